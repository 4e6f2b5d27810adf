//! Cron schedules as a Kubernetes CronJob accepts them.
//!
//! The API server parses `spec.schedule` with the standard five-field
//! syntax: minute, hour, day of month, month, day of week; each field a
//! comma-separated list of `*`, `N` or `N-M`, each optionally followed by
//! `/STEP` (`N/STEP` runs from N to the field's maximum); `?` means `*` in
//! the two day fields; months and weekdays also by their three-letter
//! English names. Weekdays run 0-6 from Sunday (7 is refused). A `TZ=` or
//! `CRON_TZ=` prefix is refused next to `spec.timeZone`, which the backup
//! CronJob always sets. The `@daily`-style shorthands are refused here
//! because `[backup] schedule` is documented as five fields; the message
//! gives the equivalent.

/// One field's name, bounds and value names.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    question: bool,
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        question: false,
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        question: false,
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
        question: true,
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
        question: false,
    },
    Field {
        name: "day of week",
        min: 0,
        max: 6,
        names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
        question: true,
    },
];

/// Checks a schedule; the error says which field is wrong and why.
pub fn check(schedule: &str) -> Result<(), String> {
    let trimmed = schedule.trim();
    if trimmed.starts_with("TZ=") || trimmed.starts_with("CRON_TZ=") {
        return Err(
            "a time zone prefix is not allowed: the CronJob sets timeZone to Etc/UTC, so write the schedule in UTC"
                .into(),
        );
    }
    if let Some(shorthand) = trimmed.strip_prefix('@') {
        let equivalent = match shorthand {
            "yearly" | "annually" => Some("0 0 1 1 *"),
            "monthly" => Some("0 0 1 * *"),
            "weekly" => Some("0 0 * * 0"),
            "daily" | "midnight" => Some("0 0 * * *"),
            "hourly" => Some("0 * * * *"),
            _ => None,
        };
        return Err(match equivalent {
            Some(e) => format!("`@{shorthand}` is a shorthand; write the five fields `{e}`"),
            None => format!("`@{shorthand}` is not a schedule; write five fields"),
        });
    }
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    if fields.len() != FIELDS.len() {
        return Err(format!(
            "a cron schedule has five fields (minute hour day-of-month month day-of-week), this one has {}",
            fields.len()
        ));
    }
    for (text, field) in fields.iter().zip(FIELDS.iter()) {
        for part in text.split(',') {
            part_of(part, field).map_err(|e| format!("{} field `{text}`: {e}", field.name))?;
        }
    }
    Ok(())
}

fn part_of(part: &str, field: &Field) -> Result<(), String> {
    let (range, step) = match part.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (part, None),
    };
    if let Some(step) = step {
        let step: u32 = step
            .parse()
            .map_err(|_| format!("step `{step}` is not a number"))?;
        if step == 0 {
            return Err("a step of 0 never repeats".into());
        }
    }
    if range == "*" || (range == "?" && field.question) {
        return Ok(());
    }
    let (start, end) = match range.split_once('-') {
        Some((a, b)) => (value(a, field)?, value(b, field)?),
        None => {
            let v = value(range, field)?;
            // `N/STEP` runs to the field's maximum.
            (v, if step.is_some() { field.max } else { v })
        }
    };
    if start > end {
        return Err(format!("the range starts at {start}, after its end {end}"));
    }
    Ok(())
}

fn value(text: &str, field: &Field) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = field.names.iter().position(|n| *n == lower) {
        return Ok(field.min + i as u32);
    }
    let v: u32 = text.parse().map_err(|_| {
        if field.names.is_empty() {
            format!("`{text}` is not a number")
        } else {
            format!(
                "`{text}` is neither a number nor a name such as `{}`",
                field.names[0]
            )
        }
    })?;
    if v < field.min || v > field.max {
        return Err(format!("{v} is outside {}-{}", field.min, field.max));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn schedules_kubernetes_accepts() {
        for s in [
            "0 2 * * *",
            "*/15 * * * *",
            "0 0-23/2 * * *",
            "5 4 * * sun",
            "0 0 1 jan,jul ?",
            "0 0 ? * MON-FRI",
            "30 3 1-7 * 1",
            "0 12 * * 6",
            "7/10 * * * *",
            "0,30 * * * *",
        ] {
            assert_eq!(check(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn schedules_kubernetes_refuses() {
        for (s, why) in [
            ("0 2 * *", "five fields"),
            ("0 2 * * * *", "this one has 6"),
            ("60 * * * *", "minute field `60`: 60 is outside 0-59"),
            ("0 24 * * *", "hour field"),
            ("0 0 0 * *", "day of month field `0`: 0 is outside 1-31"),
            ("0 0 * 13 *", "month"),
            ("0 0 * * 7", "day of week field `7`: 7 is outside 0-6"),
            ("*/0 * * * *", "a step of 0"),
            ("0 5-2 * * *", "starts at 5, after its end 2"),
            ("? * * * *", "minute field `?`"),
            ("0 0 * * funday", "neither a number nor a name"),
            ("@daily", "write the five fields `0 0 * * *`"),
            ("TZ=Europe/Paris 0 2 * * *", "time zone prefix"),
            ("CRON_TZ=UTC 0 2 * * *", "time zone prefix"),
            ("x 2 * * *", "`x` is not a number"),
        ] {
            let err = check(s).expect_err(s);
            assert!(err.contains(why), "{s}: {err}");
        }
    }
}
