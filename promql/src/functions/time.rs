//! Calendar functions (`day_of_month day_of_week day_of_year days_in_month hour minute month
//! year`) on sample values read as Unix seconds in UTC, or on the step time without argument.
//! Mirrors Prometheus' `funcDateWrapper`.

use chrono::{DateTime, Datelike, Timelike};
use promql_parser::parser::Expr;

use crate::engine::QueryError;
use crate::eval::Evaluator;
use crate::value::{FPoint, Series, Value};

/// Applies the calendar function `name` to Unix seconds `v`.
pub fn date_value(name: &str, v: f64) -> f64 {
    if v.is_nan() || v.is_infinite() {
        return f64::NAN;
    }
    let Some(t) = DateTime::from_timestamp(v.trunc() as i64, 0) else {
        return f64::NAN;
    };
    (match name {
        "day_of_month" => t.day(),
        "day_of_week" => t.weekday().num_days_from_sunday(),
        "day_of_year" => t.ordinal(),
        "days_in_month" => {
            let (y, m) = (t.year(), t.month());
            let next = if m == 12 {
                chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1)
            } else {
                chrono::NaiveDate::from_ymd_opt(y, m + 1, 1)
            };
            let this = chrono::NaiveDate::from_ymd_opt(y, m, 1);
            match (next, this) {
                (Some(n), Some(s)) => (n - s).num_days() as u32,
                _ => return f64::NAN,
            }
        }
        "hour" => t.hour(),
        "minute" => t.minute(),
        "month" => t.month(),
        "year" => return t.year() as f64,
        _ => return f64::NAN,
    }) as f64
}

pub fn date_fn(ev: &Evaluator<'_, '_>, name: &str, arg: Option<&Expr>) -> Result<Value, QueryError> {
    let Some(arg) = arg else {
        let points = ev.grid.iter().map(|t| FPoint { t, v: date_value(name, t as f64 / 1000.0) }).collect();
        return Ok(Value::Vector(vec![Series { labels: Default::default(), points, drop_name: false }]));
    };
    let mut v = ev.eval_vector(arg)?;
    for s in &mut v {
        s.drop_name = true;
        for p in &mut s.points {
            p.v = date_value(name, p.v);
        }
    }
    Ok(Value::Vector(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_values() {
        // 2024-02-29T13:45:00Z
        let t = 1_709_214_300.0;
        assert_eq!(date_value("year", t), 2024.0);
        assert_eq!(date_value("month", t), 2.0);
        assert_eq!(date_value("days_in_month", t), 29.0);
        assert_eq!(date_value("day_of_week", t), 4.0);
        assert_eq!(date_value("hour", t), 13.0);
        assert_eq!(date_value("minute", t), 45.0);
        assert_eq!(date_value("day_of_year", t), 60.0);
    }
}
