//! Delta debugging: the smallest list of operations that still fails, found by removing chunks,
//! then single operations, then items that the rest can do without once rewritten (a rename,
//! with the later items using the old name), then by simplifying the arguments of those left.

/// The list without item `i` and with the items after it rewritten not to need it, if it can.
pub type Without<'m, T> = &'m dyn Fn(&[T], usize) -> Option<Vec<T>>;

/// How to shrink: `simpler` gives smaller versions of one item; `without` removes one with a
/// rewrite of the rest.
pub struct Moves<'m, T> {
    pub simpler: &'m dyn Fn(&T) -> Vec<T>,
    pub without: Without<'m, T>,
}

/// Shrinks `items`, for which `fails` returns true, to a list that still fails and from which
/// no single item can be removed, removed with a rewrite or simplified (by `moves`) without it
/// passing. `fails` is called at most `budget` times; the smallest failing list found by then is
/// returned.
pub fn shrink<T: Clone>(
    items: &[T],
    fails: &mut dyn FnMut(&[T]) -> bool,
    moves: &Moves<'_, T>,
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
        current = remove_with_rewrites(current, &mut check, moves.without);
        let simplified;
        (current, simplified) = simplify(current, &mut check, moves.simpler);
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

/// Removes each item that `without` can rewrite the rest around, where the result still fails.
fn remove_with_rewrites<T: Clone>(
    mut current: Vec<T>,
    check: &mut dyn FnMut(&[T]) -> bool,
    without: Without<'_, T>,
) -> Vec<T> {
    let mut i = 0;
    while i < current.len() {
        match without(&current, i) {
            Some(candidate) if check(&candidate) => current = candidate,
            _ => i += 1,
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
        let moves = Moves {
            simpler: &halve,
            without: &|_, _| None,
        };
        let minimal = shrink(&items, &mut fails, &moves, 10_000);
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
        let moves = Moves {
            simpler: &|_| Vec::new(),
            without: &|_, _| None,
        };
        let result = shrink(&items, &mut fails, &moves, 10);
        assert!(calls <= 10);
        assert!(result.contains(&500));
    }

    #[test]
    fn an_item_goes_when_the_rest_is_rewritten_around_it() {
        // A tiny filesystem: ('c', n) creates n, ('r', n) reads n, (a, b) renames a to b. It
        // fails when a read finds its file.
        let items = vec![('c', 'a'), ('a', 'b'), ('z', 'q'), ('b', 'x'), ('r', 'x')];
        let mut fails = |list: &[(char, char)]| {
            let mut names = std::collections::HashSet::new();
            list.iter().any(|&(op, name)| match op {
                'c' => {
                    names.insert(name);
                    false
                }
                'r' => names.contains(&name),
                from => {
                    if names.remove(&from) {
                        names.insert(name);
                    }
                    false
                }
            })
        };
        assert!(fails(&items));
        // Without a rename, the items after it use its old name.
        let without = |list: &[(char, char)], i: usize| {
            let (from, to) = list[i];
            if from == 'c' || from == 'r' {
                return None;
            }
            let back = |c: char| if c == to { from } else { c };
            let mut rest: Vec<(char, char)> = list[..i].to_vec();
            rest.extend(list[i + 1..].iter().map(|&(op, name)| match op {
                'c' | 'r' => (op, back(name)),
                _ => (back(op), back(name)),
            }));
            Some(rest)
        };
        let mut moves = Moves {
            simpler: &|_| Vec::new(),
            without: &|_, _| None,
        };
        // Removal alone can take out only the rename that has nothing to do with it.
        assert_eq!(
            shrink(&items, &mut fails, &moves, 100),
            vec![('c', 'a'), ('a', 'b'), ('b', 'x'), ('r', 'x')]
        );
        moves.without = &without;
        assert_eq!(
            shrink(&items, &mut fails, &moves, 100),
            vec![('c', 'a'), ('r', 'a')]
        );
    }
}
