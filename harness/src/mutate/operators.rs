//! Source-level mutations of C: where each operator applies in a file, and the mutant it makes
//! there. The scan skips comments, string and character literals and preprocessor lines, so a
//! mutant always changes code.
//!
//! | operator | from | to |
//! |---|---|---|
//! | `call-success` | `ret = f(…);` | `ret = 0;` (the call is skipped and reports success) |
//! | `negate-if` | `if (C)` | `if (!(C))` |
//! | `relational` | `<`, `<=`, `>`, `>=` | `<=`, `<`, `>=`, `>` |
//! | `equality` | `==`, `!=` | `!=`, `==` |
//! | `logical` | `&&`, `\|\|` | `\|\|`, `&&` |
//! | `off-by-one` | a decimal constant N | N + 1 |
//! | `return-zero` | `return E;` (E not 0) | `return 0;` |
//! | `drop-break` | `break;` | nothing |

use std::fmt;

/// One way to change code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    CallSuccess,
    NegateIf,
    Relational,
    Equality,
    Logical,
    OffByOne,
    ReturnZero,
    DropBreak,
}

impl Operator {
    pub const ALL: &'static [Operator] = &[
        Operator::CallSuccess,
        Operator::NegateIf,
        Operator::Relational,
        Operator::Equality,
        Operator::Logical,
        Operator::OffByOne,
        Operator::ReturnZero,
        Operator::DropBreak,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operator::CallSuccess => "call-success",
            Operator::NegateIf => "negate-if",
            Operator::Relational => "relational",
            Operator::Equality => "equality",
            Operator::Logical => "logical",
            Operator::OffByOne => "off-by-one",
            Operator::ReturnZero => "return-zero",
            Operator::DropBreak => "drop-break",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A change of `source[start..end]` to `replacement`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub operator: Operator,
    pub start: usize,
    pub end: usize,
    pub replacement: String,
}

impl Edit {
    /// The mutated source.
    pub fn apply(&self, source: &str) -> String {
        format!(
            "{}{}{}",
            &source[..self.start],
            self.replacement,
            &source[self.end..]
        )
    }

    /// The 1-based line where the change starts.
    pub fn line(&self, source: &str) -> usize {
        source[..self.start].matches('\n').count() + 1
    }
}

/// Every edit the operators make in `source`, in the order of the text.
pub fn edits(source: &str) -> Vec<Edit> {
    let code = mask(source);
    let mut edits = Vec::new();
    call_success(&code, &mut edits);
    negate_if(&code, source, &mut edits);
    operators(&code, &mut edits);
    off_by_one(&code, &mut edits);
    return_zero(&code, &mut edits);
    drop_break(&code, &mut edits);
    edits.sort_by_key(|e| (e.start, e.operator));
    edits
}

/// `source` with comments, string and character literals and preprocessor lines blanked out
/// (same length, newlines kept), so that the operators see code only.
fn mask(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = bytes.to_vec();
    let mut i = 0;
    let mut line_start = true;
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for b in &mut out[from..to] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    };
    while i < bytes.len() {
        let c = bytes[i];
        if line_start && c == b'#' {
            // A preprocessor line, with its continuations.
            let mut j = i;
            while j < bytes.len() && !(bytes[j] == b'\n' && (j == 0 || bytes[j - 1] != b'\\')) {
                j += 1;
            }
            blank(&mut out, i, j);
            i = j;
            continue;
        }
        if !c.is_ascii_whitespace() {
            line_start = false;
        }
        if c == b'\n' {
            line_start = true;
        }
        if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            let end = source[i + 2..]
                .find("*/")
                .map_or(bytes.len(), |p| i + 2 + p + 2);
            blank(&mut out, i, end);
            i = end;
        } else if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
            let end = source[i..].find('\n').map_or(bytes.len(), |p| i + p);
            blank(&mut out, i, end);
            i = end;
        } else if c == b'"' || c == b'\'' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != c {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(bytes.len());
            // Keep the quotes, so that a literal still reads as an operand.
            blank(&mut out, i + 1, end.saturating_sub(1));
            i = end;
        } else {
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The index just past the parenthesis that closes the one at `open`.
fn closing(code: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &b) in code.iter().enumerate().skip(open) {
        match b {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b';' | b'{' | b'}' if depth <= 1 && i > open => return None,
            _ => {}
        }
    }
    None
}

/// Where `word` stands alone (not inside a longer identifier) in `code`.
fn words<'a>(code: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    let bytes = code.as_bytes();
    code.match_indices(word).map(|(i, _)| i).filter(move |&i| {
        (i == 0 || !is_ident(bytes[i - 1]))
            && !bytes.get(i + word.len()).is_some_and(|b| is_ident(*b))
    })
}

/// `ret = f(…);` → `ret = 0;`, where the whole statement is the call.
fn call_success(code: &str, edits: &mut Vec<Edit>) {
    let bytes = code.as_bytes();
    for at in words(code, "ret") {
        let rest = &code[at + 3..];
        let after_eq = rest.trim_start();
        let Some(after) = after_eq.strip_prefix('=') else {
            continue;
        };
        if after.starts_with('=') {
            continue;
        }
        let call_start = at + 3 + (rest.len() - after_eq.len()) + 1;
        let call = code[call_start..].trim_start();
        let name_start = call_start + (code[call_start..].len() - call.len());
        let name_len = call.bytes().take_while(|b| is_ident(*b)).count();
        if name_len == 0 || call.as_bytes()[0].is_ascii_digit() {
            continue;
        }
        let open = name_start + name_len;
        if bytes.get(open) != Some(&b'(') {
            continue;
        }
        let Some(close) = closing(bytes, open) else {
            continue;
        };
        if code[close..].trim_start().starts_with(';') {
            edits.push(Edit {
                operator: Operator::CallSuccess,
                start: name_start,
                end: close,
                replacement: "0".into(),
            });
        }
    }
}

/// `if (C)` → `if (!(C))`. The condition is found in `code` (masked) and copied from
/// `source`, whose bytes are at the same places: a literal or comment in it stays as written.
fn negate_if(code: &str, source: &str, edits: &mut Vec<Edit>) {
    let bytes = code.as_bytes();
    for at in words(code, "if") {
        let rest = &code[at + 2..];
        let open = at + 2 + (rest.len() - rest.trim_start().len());
        if bytes.get(open) != Some(&b'(') {
            continue;
        }
        let Some(close) = closing(bytes, open) else {
            continue;
        };
        let condition = &source[open + 1..close - 1];
        if condition.trim().is_empty() {
            continue;
        }
        edits.push(Edit {
            operator: Operator::NegateIf,
            start: open,
            end: close,
            replacement: format!("(!({}))", condition.trim()),
        });
    }
}

/// `<` `<=` `>` `>=` `==` `!=` `&&` `||`, swapped as the table says; never `<<`, `>>`, `->`.
fn operators(code: &str, edits: &mut Vec<Edit>) {
    let b = code.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let two = b.get(i..i + 2);
        let prev = if i > 0 { b[i - 1] } else { b' ' };
        let next2 = b.get(i + 2).copied().unwrap_or(b' ');
        let (op, len, to) = match two {
            Some(b"==") => (Operator::Equality, 2, "!="),
            Some(b"!=") => (Operator::Equality, 2, "=="),
            Some(b"&&") => (Operator::Logical, 2, "||"),
            Some(b"||") => (Operator::Logical, 2, "&&"),
            Some(b"<=") if prev != b'<' => (Operator::Relational, 2, "<"),
            Some(b">=") if prev != b'>' => (Operator::Relational, 2, ">"),
            _ => match b[i] {
                b'<' if prev != b'<'
                    && next2 != b'<'
                    && b.get(i + 1) != Some(&b'<')
                    && b.get(i + 1) != Some(&b'=') =>
                {
                    (Operator::Relational, 1, "<=")
                }
                b'>' if prev != b'>'
                    && prev != b'-'
                    && b.get(i + 1) != Some(&b'>')
                    && b.get(i + 1) != Some(&b'=') =>
                {
                    (Operator::Relational, 1, ">=")
                }
                _ => {
                    i += 1;
                    continue;
                }
            },
        };
        // `<`/`>` of an #include are masked; these in a `<` template-like context do not occur
        // in C. Compound assignments (`<<=`, `>>=`) never reach here.
        if !(len == 2 && next2 == b'=') {
            edits.push(Edit {
                operator: op,
                start: i,
                end: i + len,
                replacement: to.into(),
            });
        }
        i += len;
    }
}

/// A decimal constant N → N + 1 (not part of an identifier, a hex or float literal).
fn off_by_one(code: &str, edits: &mut Vec<Edit>) {
    let b = code.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() && (i == 0 || !(is_ident(b[i - 1]) || b[i - 1] == b'.')) {
            let len = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            let after = b.get(i + len).copied().unwrap_or(b' ');
            let is_plain = !(after.is_ascii_alphabetic() || after == b'.' || after == b'_')
                || matches!(after, b'U' | b'L' | b'u' | b'l');
            let hex = len == 1 && b[i] == b'0' && matches!(after, b'x' | b'X');
            if is_plain && !hex {
                if let Ok(n) = code[i..i + len].parse::<u64>() {
                    edits.push(Edit {
                        operator: Operator::OffByOne,
                        start: i,
                        end: i + len,
                        replacement: (n + 1).to_string(),
                    });
                }
            }
            i += len;
        } else {
            i += 1;
        }
    }
}

/// `return E;` → `return 0;`, where E is not already 0 and the function returns a value.
fn return_zero(code: &str, edits: &mut Vec<Edit>) {
    for at in words(code, "return") {
        let rest = &code[at + 6..];
        let Some(semi) = rest.find(';') else { continue };
        let value = rest[..semi].trim();
        if value.is_empty() || value == "0" || value.contains('{') {
            continue;
        }
        let start = at + 6 + (rest.len() - rest.trim_start().len());
        edits.push(Edit {
            operator: Operator::ReturnZero,
            start,
            end: at + 6 + semi,
            replacement: "0".into(),
        });
    }
}

/// `break;` → nothing.
fn drop_break(code: &str, edits: &mut Vec<Edit>) {
    for at in words(code, "break") {
        if code[at + 5..].trim_start().starts_with(';') {
            let semi = at + 5 + code[at + 5..].find(';').unwrap_or(0) + 1;
            edits.push(Edit {
                operator: Operator::DropBreak,
                start: at,
                end: semi,
                replacement: String::new(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mutants(source: &str) -> Vec<(Operator, String)> {
        edits(source)
            .iter()
            .map(|e| (e.operator, e.apply(source)))
            .collect()
    }

    #[test]
    fn each_operator_makes_its_mutant() {
        let source = "static int f(int a)\n{\n\tint ret;\n\tret = send_chmod(sctx, a);\n\tif (ret < 0)\n\t\treturn ret;\n\twhile (a && a != 4) {\n\t\tif (a >= 2 || a == 1)\n\t\t\tbreak;\n\t}\n\treturn ret;\n}\n";
        let got = mutants(source);
        let has = |op: Operator, needle: &str| {
            got.iter()
                .any(|(o, text)| *o == op && text.contains(needle))
        };
        assert!(has(Operator::CallSuccess, "\tret = 0;\n"), "{got:#?}");
        assert!(has(Operator::NegateIf, "if (!(ret < 0))"));
        assert!(has(Operator::Relational, "if (ret <= 0)"));
        assert!(has(Operator::Relational, "if (a > 2 ||"));
        assert!(has(Operator::Logical, "while (a || a != 4)"));
        assert!(has(Operator::Logical, "a >= 2 && a == 1"));
        assert!(has(Operator::Equality, "a == 4"));
        assert!(has(Operator::Equality, "a != 1"));
        assert!(has(Operator::OffByOne, "a != 5"));
        assert!(has(Operator::OffByOne, "ret < 1"));
        assert!(has(Operator::ReturnZero, "\t\treturn 0;\n\twhile"));
        assert!(has(Operator::DropBreak, "\t\t\t\n\t}"));
        for (_, text) in &got {
            assert_ne!(text, source, "an edit that changes nothing");
        }
    }

    #[test]
    fn comments_strings_and_the_preprocessor_are_left_alone() {
        let source = "#include <linux/fs.h>\n#define MAX 4\n/* if (a < b) return 1; */\nstatic const char *s = \"a < b == 3\"; // x >= 2\nchar c = '<';\n";
        let got = edits(source);
        assert!(got.is_empty(), "{got:#?}");
    }

    #[test]
    fn a_negated_condition_keeps_its_literals_and_comments() {
        let source = "\tif (path[n] == '/' &&\n\t    strcmp(s, \"a<b\") /* x */)\n\t\treturn 1;\n";
        let negated: Vec<String> = edits(source)
            .iter()
            .filter(|e| e.operator == Operator::NegateIf)
            .map(|e| e.apply(source))
            .collect();
        assert_eq!(
            negated,
            ["\tif (!(path[n] == '/' &&\n\t    strcmp(s, \"a<b\") /* x */))\n\t\treturn 1;\n"]
        );
    }

    #[test]
    fn shifts_arrows_and_hex_are_not_comparisons_or_constants() {
        let source = "x = a << 2 >> 1; p->next = q; y = 0x10; z = 1.5; w <<= 3;\n";
        let ops: Vec<(Operator, String)> = edits(source)
            .iter()
            .map(|e| (e.operator, source[e.start..e.end].to_string()))
            .collect();
        assert_eq!(
            ops,
            [
                (Operator::OffByOne, "2".to_string()),
                (Operator::OffByOne, "1".to_string()),
                (Operator::OffByOne, "3".to_string()),
            ]
        );
    }
}
