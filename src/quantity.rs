//! Exact Kubernetes quantities such as `500Gi`, `1.5Ti`, `500G` or `250m`.
//!
//! This module owns the parsing, comparison and arithmetic of the sizes and
//! CPU amounts that appear in the cluster description and the node inventory.
//! Placement decisions compare requested storage against directory capacity,
//! so a rounding error could place a volume on a directory that is one byte
//! too small; every value is therefore held exactly, as a whole number of
//! nano-units (10^-9 of a byte or of a core) in an `i128`, and two spellings
//! of the same amount (`1Gi` and `1073741824`) compare equal. The text the
//! user wrote is kept alongside so that manifests and messages can repeat it
//! verbatim.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

/// Nano-units in one whole unit.
const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// Regular expression for the accepted syntax, published in the JSON schema
/// so that editors can flag typos before the compiler runs. It admits zero
/// and values that overflow, which only the parser can rule out.
const PATTERN: &str = r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$";

/// Every suffix the canonical spelling may use, with the value of one
/// suffixed unit in nano-units. The order breaks ties between spellings of
/// equal length: a plain number first, then binary, then decimal suffixes.
const CANONICAL_SUFFIXES: [(&str, i128); 16] = [
    ("", NANOS_PER_UNIT),
    ("Ki", NANOS_PER_UNIT << 10),
    ("Mi", NANOS_PER_UNIT << 20),
    ("Gi", NANOS_PER_UNIT << 30),
    ("Ti", NANOS_PER_UNIT << 40),
    ("Pi", NANOS_PER_UNIT << 50),
    ("Ei", NANOS_PER_UNIT << 60),
    ("k", NANOS_PER_UNIT * 10i128.pow(3)),
    ("M", NANOS_PER_UNIT * 10i128.pow(6)),
    ("G", NANOS_PER_UNIT * 10i128.pow(9)),
    ("T", NANOS_PER_UNIT * 10i128.pow(12)),
    ("P", NANOS_PER_UNIT * 10i128.pow(15)),
    ("E", NANOS_PER_UNIT * 10i128.pow(18)),
    ("m", 1_000_000),
    ("u", 1_000),
    ("n", 1),
];

/// A positive Kubernetes quantity, held exactly.
///
/// Equality, ordering and hashing look only at the value, never at the
/// text, so `1Gi`, `1024Mi` and `1073741824` are the same quantity.
#[derive(Clone, Debug)]
pub struct Quantity {
    /// The value multiplied by 10^9; always positive.
    nanos: i128,
    /// The spelling the value came from.
    text: String,
}

/// Why a piece of text is not an acceptable quantity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuantityError {
    /// The text is empty.
    Empty,
    /// The text is not a number followed by an optional suffix.
    Malformed,
    /// The value is below zero.
    Negative,
    /// The value is exactly zero.
    Zero,
    /// The value has a part smaller than one nano-unit.
    TooPrecise,
    /// The value does not fit in 128 bits of nano-units.
    TooLarge,
}

impl QuantityError {
    /// Advice on how to write an acceptable quantity instead.
    pub fn hint(&self) -> &'static str {
        match self {
            QuantityError::Empty => {
                "write a number with an optional suffix such as 500Gi, 1.5Ti, 500G or 250m"
            }
            QuantityError::Malformed => {
                "write a number with an optional suffix such as 500Gi, 1.5Ti, 500G or 250m; \
                 suffixes are case-sensitive (Ki Mi Gi Ti Pi Ei, k M G T P E, m u n, \
                 or an exponent such as e3) and no spaces are allowed"
            }
            QuantityError::Negative => "quantities must be positive; remove the minus sign",
            QuantityError::Zero => "quantities must be positive; write a value above zero",
            QuantityError::TooPrecise => {
                "the smallest representable amount is 1n (10^-9); use fewer decimal places"
            }
            QuantityError::TooLarge => {
                "quantities must stay below about 10^29 units; use a smaller value"
            }
        }
    }
}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = match self {
            QuantityError::Empty => "quantity is empty",
            QuantityError::Malformed => "quantity is not a number with an optional unit suffix",
            QuantityError::Negative => "quantity is negative",
            QuantityError::Zero => "quantity is zero",
            QuantityError::TooPrecise => "quantity is more precise than one nano-unit",
            QuantityError::TooLarge => "quantity is too large",
        };
        f.write_str(message)
    }
}

impl std::error::Error for QuantityError {}

impl Quantity {
    /// Parses a Kubernetes quantity exactly; rejects malformed, negative and zero values.
    ///
    /// The grammar is an optional sign, digits with an optional decimal point
    /// (`1`, `1.5`, `.5`, `5.`), and then at most one of a binary suffix
    /// (`Ki` to `Ei`), a decimal suffix (`n`, `u`, `m`, `k`, `M`, `G`, `T`,
    /// `P`, `E`) or a decimal exponent (`e3`, `E-2`, `e+3`).
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let nanos = parse_nanos(text)?;
        Ok(Quantity {
            nanos,
            text: text.to_owned(),
        })
    }

    /// The text as written by the user, or the canonical spelling for a
    /// quantity that was computed rather than parsed.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The exact value multiplied by 10^9.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// The value rounded up to a whole unit: bytes for memory and storage,
    /// cores for CPU.
    pub fn ceil_units(&self) -> u128 {
        // The value is positive, so rounding the quotient up is the same as
        // adding one whenever there is a remainder; this avoids the overflow
        // that adding `NANOS_PER_UNIT - 1` first could cause near the limit.
        let whole = self.nanos / NANOS_PER_UNIT;
        let rounded = if self.nanos % NANOS_PER_UNIT == 0 {
            whole
        } else {
            whole + 1
        };
        rounded.unsigned_abs()
    }

    /// A quantity of `n` whole units, spelled as the plain integer.
    ///
    /// # Panics
    ///
    /// Panics when `n` is zero or too large to hold (above about 10^29);
    /// use [`Quantity::checked_from_units`] when either can happen.
    pub fn from_units(n: u128) -> Quantity {
        match Quantity::checked_from_units(n) {
            Some(quantity) => quantity,
            None => panic!("{n} units is not a representable positive quantity"),
        }
    }

    /// A quantity of `n` whole units, spelled as the plain integer, or `None`
    /// when `n` is zero or too large to hold.
    pub fn checked_from_units(n: u128) -> Option<Quantity> {
        let nanos = i128::try_from(n).ok()?.checked_mul(NANOS_PER_UNIT)?;
        if nanos == 0 {
            return None;
        }
        Some(Quantity {
            nanos,
            text: n.to_string(),
        })
    }

    /// The exact sum of two quantities, spelled canonically, or `None` on
    /// overflow.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        Quantity::from_nanos(self.nanos.checked_add(other.nanos)?)
    }

    /// The exact sum of any number of quantities, spelled canonically.
    ///
    /// An empty input sums to zero, which is not a quantity, so it yields
    /// `Ok(None)`; a sum that overflows is [`QuantityError::TooLarge`].
    pub fn checked_sum<'a, I>(items: I) -> Result<Option<Quantity>, QuantityError>
    where
        I: IntoIterator<Item = &'a Quantity>,
    {
        let mut total: Option<i128> = None;
        for item in items {
            let sum = match total {
                None => item.nanos,
                Some(so_far) => so_far
                    .checked_add(item.nanos)
                    .ok_or(QuantityError::TooLarge)?,
            };
            total = Some(sum);
        }
        match total {
            None => Ok(None),
            Some(nanos) => Quantity::from_nanos(nanos)
                .map(Some)
                .ok_or(QuantityError::TooLarge),
        }
    }

    /// The exact multiple `self × k`, spelled canonically, or `None` when it
    /// overflows or when `k` is zero (zero is not a quantity).
    pub fn mul(&self, k: u64) -> Option<Quantity> {
        Quantity::from_nanos(self.nanos.checked_mul(i128::from(k))?)
    }

    /// A computed quantity with its canonical spelling, or `None` when the
    /// value is not positive.
    fn from_nanos(nanos: i128) -> Option<Quantity> {
        if nanos <= 0 {
            return None;
        }
        Some(Quantity {
            nanos,
            text: canonical_text(nanos),
        })
    }
}

/// The shortest exact spelling of a positive value with an integer number
/// and at most one suffix, so that computed quantities read naturally
/// (`2Gi` rather than `2147483648`) and always parse back to the same value.
fn canonical_text(nanos: i128) -> String {
    CANONICAL_SUFFIXES
        .iter()
        .filter(|(_, per_unit)| nanos % per_unit == 0)
        .map(|(suffix, per_unit)| format!("{}{suffix}", nanos / per_unit))
        .min_by_key(String::len)
        .expect("a suffix of one nano-unit divides every value")
}

/// The scale a suffix applies: the value is multiplied by 2^`twos` × 10^`tens`.
struct Scale {
    twos: u32,
    tens: i64,
}

/// Reads the suffix that follows the number, or the exponent it spells.
fn parse_suffix(suffix: &str) -> Result<Scale, QuantityError> {
    let (twos, tens) = match suffix {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        _ => (0, parse_exponent(suffix)?),
    };
    Ok(Scale { twos, tens })
}

/// Reads a decimal exponent such as `e3`, `E-2` or `e+3`.
///
/// The magnitude saturates far beyond anything representable, which keeps
/// the arithmetic simple while still classifying absurd exponents correctly:
/// a huge positive one is too large and a huge negative one too precise.
fn parse_exponent(suffix: &str) -> Result<i64, QuantityError> {
    const LIMIT: i64 = 1 << 40;
    let rest = suffix
        .strip_prefix(['e', 'E'])
        .ok_or(QuantityError::Malformed)?;
    let (negative, digits) = match rest.as_bytes().first() {
        Some(b'+') => (false, &rest[1..]),
        Some(b'-') => (true, &rest[1..]),
        _ => (false, rest),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QuantityError::Malformed);
    }
    let magnitude = digits
        .bytes()
        .fold(0i64, |acc, b| (acc * 10 + i64::from(b - b'0')).min(LIMIT));
    Ok(if negative { -magnitude } else { magnitude })
}

/// Parses the text into an exact count of nano-units.
fn parse_nanos(text: &str) -> Result<i128, QuantityError> {
    if text.is_empty() {
        return Err(QuantityError::Empty);
    }
    let (negative, unsigned) = match text.as_bytes()[0] {
        b'+' => (false, &text[1..]),
        b'-' => (true, &text[1..]),
        _ => (false, text),
    };
    let int_len = leading_digits(unsigned);
    let (int_part, after_int) = unsigned.split_at(int_len);
    let (frac_part, suffix) = match after_int.strip_prefix('.') {
        Some(after_point) => after_point.split_at(leading_digits(after_point)),
        None => ("", after_int),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(QuantityError::Malformed);
    }
    let scale = parse_suffix(suffix)?;

    // The number is the integer spelled by all its digits times 10 to the
    // power of minus the count of fractional digits. Leading zeros carry no
    // value, and trailing zeros move into the exponent so that long but
    // harmless spellings such as `1.000000000000000000000000000000000000000`
    // never look larger than they are.
    let mut digits: Vec<u8> = int_part
        .bytes()
        .chain(frac_part.bytes())
        .map(|b| b - b'0')
        .skip_while(|&d| d == 0)
        .collect();
    let mut tens = scale.tens.saturating_sub(len_as_i64(frac_part));
    while digits.last() == Some(&0) {
        digits.pop();
        tens = tens.saturating_add(1);
    }
    if digits.is_empty() {
        return Err(QuantityError::Zero);
    }
    if negative {
        return Err(QuantityError::Negative);
    }

    // The value in nano-units is digits × 2^twos × 10^(tens + 9).
    let power = tens.saturating_add(9);
    let mut twos = i64::from(scale.twos);
    if power < 0 {
        // Dividing by 10^k needs k factors of five from the digits and k
        // factors of two from the digits or the binary suffix. Each exact
        // division shrinks the digits, so these loops end after a number of
        // steps proportional to the digit count, however large k is.
        let k = power.unsigned_abs();
        for _ in 0..k {
            if !divide_exactly(&mut digits, 5) {
                return Err(QuantityError::TooPrecise);
            }
        }
        twos -= i64::try_from(k).unwrap_or(i64::MAX);
        while twos < 0 {
            if !divide_exactly(&mut digits, 2) {
                return Err(QuantityError::TooPrecise);
            }
            twos += 1;
        }
    }
    let mut nanos = digits.iter().try_fold(0i128, |acc, &d| {
        acc.checked_mul(10)?.checked_add(i128::from(d))
    });
    // At most 60 twos remain, so the shift below cannot lose bits silently:
    // `checked_mul` catches any overflow.
    nanos = nanos.and_then(|n| n.checked_mul(1i128 << twos));
    if power > 0 {
        let factor = u32::try_from(power)
            .ok()
            .and_then(|p| 10i128.checked_pow(p));
        nanos = nanos.and_then(|n| n.checked_mul(factor?));
    }
    nanos.ok_or(QuantityError::TooLarge)
}

/// Length of the run of ASCII digits at the start of `s`.
fn leading_digits(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

/// The length of a string as an exponent offset.
fn len_as_i64(s: &str) -> i64 {
    i64::try_from(s.len()).unwrap_or(i64::MAX)
}

/// Divides a big decimal number, held as digits with the most significant
/// first and no leading zeros, by a small divisor in place. Returns false,
/// leaving the digits unspecified, when the division leaves a remainder.
fn divide_exactly(digits: &mut Vec<u8>, divisor: u8) -> bool {
    let mut remainder = 0u8;
    for digit in digits.iter_mut() {
        let current = remainder * 10 + *digit;
        *digit = current / divisor;
        remainder = current % divisor;
    }
    let leading_zeros = digits.iter().take_while(|&&d| d == 0).count();
    digits.drain(..leading_zeros);
    remainder == 0
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Quantity) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Quantity) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Quantity) -> std::cmp::Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Hashing the value alone keeps `Hash` consistent with `Eq`.
        self.nanos.hash(state);
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Quantity, D::Error> {
        deserializer.deserialize_str(QuantityVisitor)
    }
}

/// Turns a string from any serde format into a [`Quantity`].
struct QuantityVisitor;

impl Visitor<'_> for QuantityVisitor {
    type Value = Quantity;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a quantity string such as \"500Gi\"")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Quantity, E> {
        Quantity::parse(value).map_err(E::custom)
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Quantity")
    }

    fn schema_id() -> Cow<'static, str> {
        Cow::Borrowed(concat!(module_path!(), "::Quantity"))
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": PATTERN,
            "description": "A positive Kubernetes quantity: a number with an optional \
                binary suffix (Ki, Mi, Gi, Ti, Pi, Ei), decimal suffix (n, u, m, k, M, G, \
                T, P, E) or decimal exponent (e3), for example 500Gi, 1.5Ti, 500G or 250m.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    const GI: i128 = 1 << 30;
    const E9: i128 = NANOS_PER_UNIT;

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    #[test]
    fn parses_good_inputs_exactly() {
        let cases: &[(&str, i128)] = &[
            ("1", E9),
            ("+1", E9),
            ("1.5", 1_500_000_000),
            (".5", 500_000_000),
            ("5.", 5 * E9),
            ("007", 7 * E9),
            ("1n", 1),
            ("1u", 1_000),
            ("1m", 1_000_000),
            ("250m", 250_000_000),
            ("1k", 1_000 * E9),
            ("1M", 1_000_000 * E9),
            ("500G", 500_000_000_000 * E9),
            ("1T", 10i128.pow(12) * E9),
            ("1P", 10i128.pow(15) * E9),
            ("1E", 10i128.pow(18) * E9),
            ("1Ki", 1024 * E9),
            ("1Mi", (1 << 20) * E9),
            ("500Gi", 500 * GI * E9),
            ("1.5Ti", 1536 * GI * E9),
            ("2Pi", (2 << 50) * E9),
            ("1Ei", (1 << 60) * E9),
            ("0.1Gi", GI * E9 / 10),
            ("0.5Ki", 512 * E9),
            ("1e3", 1_000 * E9),
            ("1E3", 1_000 * E9),
            ("1e+3", 1_000 * E9),
            ("1E-2", 10_000_000),
            ("1e-9", 1),
            ("1.5e0", 1_500_000_000),
            ("0.000000001", 1),
            ("1.000000000000000000000000000000000000000000000", E9),
            ("100000000000000000000000000000e-20", 10i128.pow(9) * E9),
        ];
        for &(text, nanos) in cases {
            let parsed = q(text);
            assert_eq!(parsed.nanos(), nanos, "{text}");
            assert_eq!(parsed.as_str(), text);
        }
    }

    #[test]
    fn equal_values_are_equal_whatever_the_spelling() {
        let groups: &[&[&str]] = &[
            &["1Gi", "1024Mi", "1073741824", "1048576Ki"],
            &["1.5Ti", "1536Gi"],
            &["500m", "0.5", ".5", "5e-1", "500000u"],
            &["1e3", "1k", "1000", "+1000", "1E3"],
            &["1G", "1000M", "1e9"],
        ];
        for group in groups {
            for a in group.iter() {
                for b in group.iter() {
                    assert_eq!(q(a), q(b), "{a} vs {b}");
                    assert_eq!(hash_of(&q(a)), hash_of(&q(b)), "{a} vs {b}");
                }
            }
        }
        assert_ne!(q("1G"), q("1Gi"));
        assert_ne!(q("1m"), q("1M"));
    }

    fn hash_of(quantity: &Quantity) -> u64 {
        use std::collections::hash_map::DefaultHasher;
        let mut hasher = DefaultHasher::new();
        quantity.hash(&mut hasher);
        hasher.finish()
    }

    #[test]
    fn orders_by_value() {
        let ascending = [
            "1n", "1u", "1m", "0.5", "1", "1k", "1Ki", "1M", "1Mi", "1G", "1Gi", "1T", "1Ti", "1P",
            "1Pi", "1E", "1Ei",
        ];
        for pair in ascending.windows(2) {
            assert!(q(pair[0]) < q(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert!(q("1.5Ti") > q("1535Gi"));
        assert_eq!(q("1Gi").cmp(&q("1024Mi")), std::cmp::Ordering::Equal);
        let mut sorted = [q("2Gi"), q("100Mi"), q("1G")];
        sorted.sort();
        let texts: Vec<&str> = sorted.iter().map(Quantity::as_str).collect();
        assert_eq!(texts, ["100Mi", "1G", "2Gi"]);
    }

    #[test]
    fn rejects_bad_inputs_with_the_right_error() {
        use QuantityError::*;
        let cases: &[(&str, QuantityError)] = &[
            ("", Empty),
            ("Gi", Malformed),
            ("1 Gi", Malformed),
            (" 1Gi", Malformed),
            ("1Gi ", Malformed),
            ("1GiB", Malformed),
            ("1.2.3", Malformed),
            ("1..5", Malformed),
            (".", Malformed),
            ("+", Malformed),
            ("-", Malformed),
            ("+-1", Malformed),
            ("1e", Malformed),
            ("1e+", Malformed),
            ("1e1.5", Malformed),
            ("1ki", Malformed),
            ("1K", Malformed),
            ("1gi", Malformed),
            ("abc", Malformed),
            ("1Gi1", Malformed),
            ("-1Gi", Negative),
            ("-0.5", Negative),
            ("0", Zero),
            ("0Gi", Zero),
            ("-0", Zero),
            ("0.000", Zero),
            ("0e5", Zero),
            ("99999999999999999999999Ei", TooLarge),
            ("1e39", TooLarge),
            ("1e99999999999999999999999", TooLarge),
            ("200000000000000000000000000000", TooLarge),
            ("0.0000000001", TooPrecise),
            ("1.5n", TooPrecise),
            ("1e-10", TooPrecise),
            ("1e-99999999999999999999999", TooPrecise),
            ("0.0000000001Ki", TooPrecise),
        ];
        for &(text, expected) in cases {
            assert_eq!(Quantity::parse(text).err(), Some(expected), "{text:?}");
        }
    }

    #[test]
    fn errors_read_as_lowercase_phrases_with_hints() {
        use QuantityError::*;
        for error in [Empty, Malformed, Negative, Zero, TooPrecise, TooLarge] {
            let message = error.to_string();
            assert!(message.starts_with("quantity "), "{message}");
            assert!(!message.ends_with('.'), "{message}");
            assert!(!error.hint().is_empty());
            assert!(!error.hint().ends_with('.'), "{}", error.hint());
        }
        assert!(Malformed.hint().contains("500Gi, 1.5Ti, 500G or 250m"));
    }

    #[test]
    fn precision_is_exact_when_binary_suffixes_supply_the_twos() {
        // 2^-10 Ki is exactly one unit, although it has ten decimal places.
        assert_eq!(q("0.0009765625Ki").nanos(), E9);
        // 2^-30 Gi is one unit as well; the digits alone exceed 10^-9.
        assert_eq!(q("0.000000000931322574615478515625Gi").nanos(), E9);
        assert_eq!(
            Quantity::parse("0.0000000009313225746154785156251Gi").err(),
            Some(QuantityError::TooPrecise)
        );
    }

    #[test]
    fn rounds_up_to_whole_units() {
        assert_eq!(q("1.5").ceil_units(), 2);
        assert_eq!(q("500m").ceil_units(), 1);
        assert_eq!(q("1n").ceil_units(), 1);
        assert_eq!(q("2").ceil_units(), 2);
        assert_eq!(q("1Gi").ceil_units(), 1_073_741_824);
        assert_eq!(q("0.1Gi").ceil_units(), 107_374_183);
        assert_eq!(q("1Ei").ceil_units(), 1 << 60);
    }

    #[test]
    fn builds_from_whole_units() {
        let quantity = Quantity::from_units(1_073_741_824);
        assert_eq!(quantity.as_str(), "1073741824");
        assert_eq!(quantity, q("1Gi"));
        assert_eq!(quantity.ceil_units(), 1_073_741_824);
        assert!(Quantity::checked_from_units(0).is_none());
        assert!(Quantity::checked_from_units(u128::MAX).is_none());
        let largest = (i128::MAX / E9) as u128;
        assert!(Quantity::checked_from_units(largest).is_some());
        assert!(Quantity::checked_from_units(largest + 1).is_none());
    }

    #[test]
    #[should_panic(expected = "not a representable positive quantity")]
    fn from_units_panics_on_zero() {
        let _ = Quantity::from_units(0);
    }

    #[test]
    fn adds_and_multiplies_exactly_with_canonical_text() {
        let sum = q("1Gi").checked_add(&q("1024Mi")).unwrap();
        assert_eq!(sum.nanos(), 2 * GI * E9);
        assert_eq!(sum.as_str(), "2Gi");
        assert_eq!(q("1.5").checked_add(&q("500m")).unwrap().as_str(), "2");
        assert_eq!(q("250m").checked_add(&q("1")).unwrap().as_str(), "1250m");
        assert_eq!(q("500G").checked_add(&q("500G")).unwrap().as_str(), "1T");
        assert_eq!(q("1Ei").mul(3).unwrap().as_str(), "3Ei");
        assert_eq!(q("1.5Ti").mul(2).unwrap(), q("3Ti"));
        assert_eq!(q("1").mul(1536).unwrap().as_str(), "1536");
        assert!(q("1Gi").mul(0).is_none());
        assert!(q("1Ei").mul(u64::MAX).is_none());
        let huge = Quantity::from_units((i128::MAX / E9) as u128);
        assert!(huge.checked_add(&huge).is_none());

        let parts = [q("100Gi"), q("1.5Ti"), q("412Gi")];
        let total = Quantity::checked_sum(&parts).unwrap().unwrap();
        assert_eq!(total, q("2Ti"));
        assert_eq!(total.as_str(), "2Ti");
        assert_eq!(Quantity::checked_sum(&[]), Ok(None));
        assert_eq!(
            Quantity::checked_sum([&huge, &huge]),
            Err(QuantityError::TooLarge)
        );
    }

    #[test]
    fn displays_the_text_as_written() {
        assert_eq!(q("1.5Ti").to_string(), "1.5Ti");
        assert_eq!(q("+1e3").to_string(), "+1e3");
    }

    #[derive(Debug, Deserialize, Serialize)]
    struct Volume {
        size: Quantity,
    }

    #[test]
    fn round_trips_through_toml_as_text() {
        let volume: Volume = toml::from_str("size = \"1.5Ti\"\n").unwrap();
        assert_eq!(volume.size, q("1536Gi"));
        assert_eq!(volume.size.as_str(), "1.5Ti");
        let written = toml::to_string(&volume).unwrap();
        assert_eq!(written.trim(), "size = \"1.5Ti\"");
        let again: Volume = toml::from_str(&written).unwrap();
        assert_eq!(again.size.as_str(), "1.5Ti");
    }

    #[test]
    fn toml_errors_carry_the_quantity_message() {
        let error = toml::from_str::<Volume>("size = \"1GiB\"\n").unwrap_err();
        assert!(
            error
                .to_string()
                .contains(&QuantityError::Malformed.to_string()),
            "{error}"
        );
        let error = toml::from_str::<Volume>("size = \"-1Gi\"\n").unwrap_err();
        assert!(
            error.to_string().contains("quantity is negative"),
            "{error}"
        );
        let error = toml::from_str::<Volume>("size = 5\n").unwrap_err();
        assert!(error.to_string().contains("a quantity string"), "{error}");
    }

    #[test]
    fn schema_is_a_patterned_string() {
        let schema = schemars::schema_for!(Quantity);
        let json = serde_json::to_value(&schema).unwrap();
        assert_eq!(json["type"], "string");
        assert_eq!(json["pattern"], PATTERN);
        assert!(json["description"].as_str().unwrap().contains("500Gi"));
    }

    const SUFFIXES: [(&str, i128); 16] = [
        ("", E9),
        ("n", 1),
        ("u", 1_000),
        ("m", 1_000_000),
        ("k", 1_000 * E9),
        ("M", 1_000_000 * E9),
        ("G", 1_000_000_000 * E9),
        ("T", 1_000_000_000_000 * E9),
        ("P", 1_000_000_000_000_000 * E9),
        ("E", 1_000_000_000_000_000_000 * E9),
        ("Ki", 1024 * E9),
        ("Mi", (1 << 20) * E9),
        ("Gi", (1 << 30) * E9),
        ("Ti", (1 << 40) * E9),
        ("Pi", (1 << 50) * E9),
        ("Ei", (1 << 60) * E9),
    ];

    proptest! {
        #[test]
        fn integer_with_suffix_is_exact(n in 1u64..10_000_000_000, index in 0..SUFFIXES.len()) {
            let (suffix, per_unit) = SUFFIXES[index];
            let parsed = Quantity::parse(&format!("{n}{suffix}")).unwrap();
            prop_assert_eq!(parsed.nanos(), i128::from(n) * per_unit);
        }

        #[test]
        fn canonical_text_parses_back_to_the_same_value(
            n in 1u64..1_000_000,
            index in 0..SUFFIXES.len(),
            k in 1u64..5_000,
        ) {
            let (suffix, _) = SUFFIXES[index];
            let base = Quantity::parse(&format!("{n}{suffix}")).unwrap();
            let product = base.mul(k).unwrap();
            prop_assert_eq!(product.nanos(), base.nanos() * i128::from(k));
            prop_assert_eq!(Quantity::parse(product.as_str()).unwrap(), product.clone());
            let sum = base.checked_add(&product).unwrap();
            prop_assert_eq!(Quantity::parse(sum.as_str()).unwrap(), sum);
        }

        #[test]
        fn decimal_fractions_of_binary_units_are_exact(
            whole in 0u32..100_000,
            tenths in 0u32..10,
            index in 10..SUFFIXES.len(),
        ) {
            prop_assume!(whole > 0 || tenths > 0);
            let (suffix, per_unit) = SUFFIXES[index];
            let parsed = Quantity::parse(&format!("{whole}.{tenths}{suffix}")).unwrap();
            let expected = (i128::from(whole) * 10 + i128::from(tenths)) * per_unit / 10;
            prop_assert_eq!(parsed.nanos(), expected);
        }
    }
}
