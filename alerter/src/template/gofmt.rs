//! Go's `%.Ng` float formatting (`strconv.FormatFloat(v, 'g', N, 64)`), which Prometheus'
//! humanize functions use: scientific notation when the exponent is < -4 or >= N, trailing zeros
//! removed, exponent with at least two digits (`1.235e+06`).

/// Formats `v` like Go's `fmt.Sprintf("%.<prec>g", v)`.
pub fn format_g(v: f64, prec: usize) -> String {
    let prec = prec.max(1);
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if v == 0.0 {
        return "0".into();
    }
    let sci = format!("{:.*e}", prec - 1, v);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let mant = strip_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{v:.decimals$}")).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_go() {
        assert_eq!(format_g(1.0, 4), "1");
        assert_eq!(format_g(1234.0, 4), "1234");
        assert_eq!(format_g(12345.0, 4), "1.234e+04");
        assert_eq!(format_g(0.0001234, 4), "0.0001234");
        assert_eq!(format_g(0.00001234, 4), "1.234e-05");
        assert_eq!(format_g(1.5, 4), "1.5");
        assert_eq!(format_g(-2.25, 4), "-2.25");
        assert_eq!(format_g(999.99, 4), "1000");
        assert_eq!(format_g(f64::NAN, 4), "NaN");
    }
}
