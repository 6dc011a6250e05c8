//! A verdict as one line of JSON, character for character as Python writes it with
//! `json.dumps(verdict.to_dict())` (rstdiag/labels.py): the same keys in the same order,
//! `ensure_ascii` escapes, ", " and ": " separators, `round(ts, 6)` spelt as `repr` spells a
//! float. `read --format json` and `jsonl` write these lines as they are, which saves the
//! interpreter three quarters of its work per RST; a Python test holds the two spellings
//! equal on every test capture.

use std::fmt::Write;

use crate::records::push_flags;
use crate::verdict::{AddrText, Verdict};

/// `json.dumps(verdict.to_dict())` for a verdict read from the capture named `file`, whose
/// flow has the Community ID `community_id` (the caller has it already).
pub fn verdict_json(v: &Verdict, file: &str, community_id: &str) -> String {
    let mut out = String::with_capacity(1024);
    push_verdict(&mut out, v, file, community_id);
    out
}

/// `verdict_json` written at the end of `out`: a batch's lines go into one buffer, with no
/// allocation per line or per field.
pub fn push_verdict(out: &mut String, v: &Verdict, file: &str, community_id: &str) {
    out.push_str("{\"file\": ");
    push_str(out, file);
    let _ = write!(out, ", \"frame\": {}, \"ts\": ", v.frame);
    push_float(out, round6(v.ts));
    // addresses, endpoints and flags are plain ASCII: nothing in them to escape
    let _ = write!(
        out,
        ", \"src\": \"{}\", \"sport\": {}, \"dst\": \"{}\", \"dport\": {}, \"flags\": \"",
        AddrText(v.src),
        v.sport,
        AddrText(v.dst),
        v.dport
    );
    push_flags(out, v.flags);
    let _ = write!(
        out,
        "\", \"client\": \"{}\", \"server\": \"{}\", \"sender\": \"{}\", \"label\": \"{}\", \
         \"confidence\": \"{}\", \"evidence\": ",
        v.client,
        v.server,
        v.sender.as_str(),
        v.label.as_str(),
        v.confidence.as_str()
    );
    push_str(out, &v.evidence);
    out.push_str(", \"hint\": ");
    push_str(out, v.hint());
    out.push_str(", \"alternatives\": [");
    for (i, label) in v.alternatives.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('"');
        out.push_str(label.as_str());
        out.push('"');
    }
    let _ = write!(
        out,
        "], \"effect\": \"{}\", \"community_id\": ",
        v.effect.as_str()
    );
    push_str(out, community_id);
    if let Some(original) = v.duplicate_of {
        let _ = write!(out, ", \"duplicate_of\": {original}");
    }
    out.push('}');
}

/// A JSON string as `json.dumps` writes it with `ensure_ascii`: printable ASCII as is,
/// the short escapes, and every other character as `\uXXXX` (lower-case hex; characters
/// beyond the BMP as a surrogate pair).
pub fn push_str(out: &mut String, text: &str) {
    out.push('"');
    let mut rest = text;
    while !rest.is_empty() {
        // the longest run that needs no escape goes in whole
        let plain = rest
            .bytes()
            .position(|b| !(b' '..=b'~').contains(&b) || b == b'"' || b == b'\\')
            .unwrap_or(rest.len());
        // a char boundary: every byte before `plain` is ASCII
        let (run, tail) = rest.split_at_checked(plain).unwrap_or((rest, ""));
        out.push_str(run);
        let mut chars = tail.chars();
        if let Some(c) = chars.next() {
            push_escaped(out, c);
        }
        rest = chars.as_str();
    }
    out.push('"');
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        _ => {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
}

/// Python's `round(x, 6)`: the decimal correctly rounded on the exact binary value, ties to
/// even (Rust's formatter rounds the same way), read back as the nearest float.
pub fn round6(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{x:.6}").parse().unwrap_or(x)
}

/// A float as `json.dumps` writes it: `repr` (the shortest digits that read back the same,
/// positional from 1e-4 up to 1e16, else with an exponent of at least two digits), and
/// Infinity, -Infinity, NaN.
pub fn push_float(out: &mut String, x: f64) {
    if x.is_nan() {
        out.push_str("NaN");
        return;
    }
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    // Rust's `{:e}` gives the same shortest digits: "-1.2345e-7"
    let sci = format!("{x:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    out.push_str(sign);
    let point = exponent + 1; // digits before the decimal point
    if !(-3..=16).contains(&point) {
        let (first, rest) = digits.split_at_checked(1).unwrap_or((&digits, ""));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.unsigned_abs()
        );
    } else if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
        out.push_str(&digits);
    } else {
        let point = point as usize;
        if digits.len() <= point {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', point - digits.len()));
            out.push_str(".0");
        } else {
            let (whole, fraction) = digits.split_at_checked(point).unwrap_or((&digits, ""));
            out.push_str(whole);
            out.push('.');
            out.push_str(fraction);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(x: f64) -> String {
        let mut out = String::new();
        push_float(&mut out, x);
        out
    }

    fn string(text: &str) -> String {
        let mut out = String::new();
        push_str(&mut out, text);
        out
    }

    #[test]
    fn floats_are_spelt_as_python_repr_spells_them() {
        // each pair from Python 3.11: json.dumps(x)
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000123, "0.000123"),
            (1.5e-7, "1.5e-07"),
            (1700000000.123456, "1700000000.123456"),
            (1e16, "1e+16"),
            (9999999999999998.0, "9999999999999998.0"),
            (1.2345e17, "1.2345e+17"),
            (1e300, "1e+300"),
            (-2.5e-300, "-2.5e-300"),
            (123456789.0, "123456789.0"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
        ];
        for (x, python) in cases {
            assert_eq!(float(x), python, "{x:e}");
        }
    }

    #[test]
    fn rounding_to_microseconds_ties_to_even_as_python_round_does() {
        // Python 3.11: round(0.0078125, 6) == 0.007812; round(1700000000.0078125, 6) ==
        // 1700000000.007812; round(0.0000015, 6) == 2e-06 (not a tie in binary)
        assert_eq!(float(round6(0.0078125)), "0.007812");
        assert_eq!(float(round6(1700000000.0078125)), "1700000000.007812");
        assert_eq!(float(round6(0.0000015)), "2e-06");
        assert_eq!(float(round6(1e20)), "1e+20");
    }

    #[test]
    fn strings_are_escaped_as_ensure_ascii_escapes_them() {
        // each pair from Python 3.11: json.dumps(text)
        let cases = [
            ("plain text", "\"plain text\""),
            ("quote \" backslash \\", "\"quote \\\" backslash \\\\\""),
            ("\n\r\t\u{8}\u{c}", "\"\\n\\r\\t\\b\\f\""),
            ("\u{0}\u{1b}[31m", "\"\\u0000\\u001b[31m\""),
            ("\u{7f}", "\"\\u007f\""),
            ("caf\u{e9} \u{202e}", "\"caf\\u00e9 \\u202e\""),
            ("\u{1f600}", "\"\\ud83d\\ude00\""),
        ];
        for (text, python) in cases {
            assert_eq!(string(text), python);
        }
    }
}
