//! Kubernetes resource quantities (`1Gi`, `500M`, `1e3`, `250m`) as whole numbers: bytes
//! (`Quantity.Value()`) or thousandths (`Quantity.MilliValue()`, millicores of CPU).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Why a quantity could not be turned into bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not a Kubernetes quantity; the text is the API server's.
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    Syntax,
    /// Byte sizes cannot be negative.
    #[error("must be greater than or equal to 0")]
    Negative,
    /// More than `u64::MAX` bytes.
    #[error("must be at most {} bytes", u64::MAX)]
    TooLarge,
}

/// The quantity in bytes, rounded up like Kubernetes' `Quantity.Value()` (so `1500m` is 2).
///
/// Accepts plain and fractional numbers, decimal suffixes `n u m k M G T P E`, binary suffixes
/// `Ki Mi Gi Ti Pi Ei` and exponents (`1e3`, `5E-1`). Used for emptyDir `sizeLimit` and memory.
pub fn quantity_bytes(q: &Quantity) -> Result<u64, QuantityError> {
    parse(&q.0, 0)
}

/// The quantity in thousandths, rounded up like Kubernetes' `Quantity.MilliValue()`: a CPU
/// quantity in millicores (`500m` and `0.5` are 500, `1` is 1000, `0.0001` is 1).
pub fn quantity_milli(q: &Quantity) -> Result<u64, QuantityError> {
    parse(&q.0, 3)
}

/// The quantity times `10^scale`, rounded up.
fn parse(s: &str, scale: i64) -> Result<u64, QuantityError> {
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
        return Err(QuantityError::Syntax);
    }

    // Two's exponent from a binary suffix, ten's exponent from the rest.
    let (pow2, mut pow10): (u32, i64) = match suffix {
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "" => (0, 0),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        exp => (0, exponent(exp)?),
    };

    let mut mantissa: u128 = 0;
    for d in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(d - b'0')))
            .ok_or(QuantityError::TooLarge)?;
    }
    if mantissa == 0 {
        return Ok(0);
    }
    if negative {
        return Err(QuantityError::Negative);
    }
    pow10 -= i64::try_from(frac_part.len()).map_err(|_| QuantityError::TooLarge)?;
    pow10 = pow10.checked_add(scale).ok_or(QuantityError::TooLarge)?;

    let mut value = mantissa
        .checked_mul(1u128 << pow2)
        .ok_or(QuantityError::TooLarge)?;
    if pow10 >= 0 {
        let scale = u32::try_from(pow10)
            .ok()
            .and_then(|p| 10u128.checked_pow(p))
            .ok_or(QuantityError::TooLarge)?;
        value = value.checked_mul(scale).ok_or(QuantityError::TooLarge)?;
    } else {
        // A divisor beyond u128 leaves a positive value below one byte: rounds up to 1.
        value = match u32::try_from(-pow10)
            .ok()
            .and_then(|p| 10u128.checked_pow(p))
        {
            Some(div) => value.div_ceil(div),
            None => 1,
        };
    }
    u64::try_from(value).map_err(|_| QuantityError::TooLarge)
}

/// `e3`, `E-2`, `e+6`: the ten's exponent.
fn exponent(s: &str) -> Result<i64, QuantityError> {
    let digits = s
        .strip_prefix('e')
        .or_else(|| s.strip_prefix('E'))
        .ok_or(QuantityError::Syntax)?;
    let unsigned = digits
        .strip_prefix('-')
        .or_else(|| digits.strip_prefix('+'))
        .unwrap_or(digits);
    if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QuantityError::Syntax);
    }
    // Exponents too large for i64 make the quantity too large (or, negative, zero-ish).
    digits.parse().map_err(|_| {
        if digits.starts_with('-') {
            QuantityError::Syntax
        } else {
            QuantityError::TooLarge
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_in_bytes() {
        let cases: &[(&str, Result<u64, QuantityError>)] = &[
            ("0", Ok(0)),
            ("128", Ok(128)),
            ("+128", Ok(128)),
            ("1k", Ok(1_000)),
            ("1M", Ok(1_000_000)),
            ("2G", Ok(2_000_000_000)),
            ("1T", Ok(1_000_000_000_000)),
            ("1P", Ok(1_000_000_000_000_000)),
            ("1E", Ok(1_000_000_000_000_000_000)),
            ("1Ki", Ok(1024)),
            ("64Mi", Ok(64 << 20)),
            ("1Gi", Ok(1 << 30)),
            ("1Ti", Ok(1 << 40)),
            ("1Pi", Ok(1 << 50)),
            ("1Ei", Ok(1 << 60)),
            ("1.5Gi", Ok(3 << 29)),
            ("0.5Ki", Ok(512)),
            (".5k", Ok(500)),
            ("5.", Ok(5)),
            ("1e3", Ok(1_000)),
            ("1E3", Ok(1_000)),
            ("1e+3", Ok(1_000)),
            ("25e-1", Ok(3)),
            ("1500m", Ok(2)),
            ("1n", Ok(1)),
            ("1e-400", Ok(1)),
            ("0Gi", Ok(0)),
            ("-0", Ok(0)),
            ("-1Gi", Err(QuantityError::Negative)),
            ("16Ei", Err(QuantityError::TooLarge)),
            ("1e20", Err(QuantityError::TooLarge)),
            ("1e99999999999999999999", Err(QuantityError::TooLarge)),
            ("", Err(QuantityError::Syntax)),
            ("Gi", Err(QuantityError::Syntax)),
            ("1 Gi", Err(QuantityError::Syntax)),
            ("1GB", Err(QuantityError::Syntax)),
            ("1gi", Err(QuantityError::Syntax)),
            ("1e", Err(QuantityError::Syntax)),
            ("1.2.3", Err(QuantityError::Syntax)),
            (".", Err(QuantityError::Syntax)),
            ("1Ki5", Err(QuantityError::Syntax)),
        ];
        for (text, want) in cases {
            let got = quantity_bytes(&Quantity((*text).to_owned()));
            assert_eq!(&got, want, "quantity {text:?}");
        }
    }

    #[test]
    fn quantities_in_thousandths() {
        let cases: &[(&str, Result<u64, QuantityError>)] = &[
            ("0", Ok(0)),
            ("1", Ok(1_000)),
            ("500m", Ok(500)),
            ("0.5", Ok(500)),
            (".25", Ok(250)),
            ("2", Ok(2_000)),
            ("1500m", Ok(1_500)),
            ("100u", Ok(1)),
            ("0.0001", Ok(1)),
            ("1k", Ok(1_000_000)),
            ("1Ki", Ok(1_024_000)),
            ("64Mi", Ok(67_108_864_000)),
            ("1e-3", Ok(1)),
            ("1e3", Ok(1_000_000)),
            ("-1", Err(QuantityError::Negative)),
            ("-100m", Err(QuantityError::Negative)),
            ("16Ei", Err(QuantityError::TooLarge)),
            ("1e17", Err(QuantityError::TooLarge)),
            ("one", Err(QuantityError::Syntax)),
            ("1 cpu", Err(QuantityError::Syntax)),
        ];
        for (text, want) in cases {
            let got = quantity_milli(&Quantity((*text).to_owned()));
            assert_eq!(&got, want, "quantity {text:?}");
        }
    }
}
