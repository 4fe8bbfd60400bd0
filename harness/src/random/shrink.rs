//! Delta debugging: the smallest list of operations that still fails, found by removing chunks,
//! then single operations, then by simplifying the arguments of those that are left.

/// Shrinks `items`, for which `fails` returns true, to a list that still fails and from which
/// no single item can be removed or simplified (by `simpler`) without it passing. `fails` is
/// called at most `budget` times; the smallest failing list found by then is returned.
pub fn shrink<T: Clone>(
    items: &[T],
    fails: &mut dyn FnMut(&[T]) -> bool,
    simpler: &dyn Fn(&T) -> Vec<T>,
    budget: usize,
) -> Vec<T> {
    let calls = std::cell::Cell::new(0usize);
    let mut check = |candidate: &[T]| -> bool {
        if calls.get() >= budget {
            return false;
        }
        calls.set(calls.get() + 1);
        fails(candidate)
    };
    let mut current = items.to_vec();
    loop {
        let before = current.len();
        current = remove_chunks(current, &mut check);
        let simplified;
        (current, simplified) = simplify(current, &mut check, simpler);
        // A simpler item may let another go, so go round until a round changes nothing.
        if (current.len() == before && !simplified) || calls.get() >= budget {
            return current;
        }
    }
}

/// ddmin's removal half: try removing each of n chunks, starting with halves and ending with
/// single items.
fn remove_chunks<T: Clone>(mut current: Vec<T>, check: &mut dyn FnMut(&[T]) -> bool) -> Vec<T> {
    let mut chunks = 2usize;
    while !current.is_empty() {
        let size = current.len().div_ceil(chunks).max(1);
        let mut removed_one = false;
        let mut start = 0;
        while start < current.len() {
            let end = (start + size).min(current.len());
            let candidate: Vec<T> = current[..start]
                .iter()
                .chain(&current[end..])
                .cloned()
                .collect();
            if check(&candidate) {
                current = candidate;
                removed_one = true;
            } else {
                start = end;
            }
        }
        if size == 1 && !removed_one {
            break;
        }
        if !removed_one {
            chunks = (chunks * 2).min(current.len().max(1));
        }
    }
    current
}

/// Replaces each item by the first of its simpler versions that still fails, repeatedly.
/// Returns the list and whether anything was replaced.
fn simplify<T: Clone>(
    mut current: Vec<T>,
    check: &mut dyn FnMut(&[T]) -> bool,
    simpler: &dyn Fn(&T) -> Vec<T>,
) -> (Vec<T>, bool) {
    let mut simplified = false;
    for i in 0..current.len() {
        let mut progress = true;
        while progress {
            progress = false;
            for candidate_item in simpler(&current[i]) {
                let mut candidate = current.clone();
                candidate[i] = candidate_item;
                if check(&candidate) {
                    current = candidate;
                    progress = true;
                    simplified = true;
                    break;
                }
            }
        }
    }
    (current, simplified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_two_items_a_fake_oracle_needs() {
        // Fails when 13 comes somewhere before 71 and some item is at least 500.
        let items: Vec<u32> = (0..100).map(|i| (i * 37) % 101).chain([900]).collect();
        let mut calls = 0;
        let mut fails = |list: &[u32]| {
            calls += 1;
            let a = list.iter().position(|&x| x == 13);
            let b = list.iter().position(|&x| x == 71);
            matches!((a, b), (Some(a), Some(b)) if a < b) && list.iter().any(|&x| x >= 500)
        };
        assert!(fails(&items));
        // Simplifying halves a number while it stays at least 500.
        let halve = |x: &u32| if *x >= 2 { vec![x / 2] } else { vec![] };
        let minimal = shrink(&items, &mut fails, &halve, 10_000);
        assert_eq!(minimal, vec![13, 71, 900]);
        assert!(calls < 2_000, "{calls} oracle calls");
    }

    #[test]
    fn the_budget_bounds_the_calls() {
        let items: Vec<u32> = (0..1000).collect();
        let mut calls = 0;
        let mut fails = |list: &[u32]| {
            calls += 1;
            list.contains(&500)
        };
        let result = shrink(&items, &mut fails, &|_| Vec::new(), 10);
        assert!(calls <= 10);
        assert!(result.contains(&500));
    }
}
