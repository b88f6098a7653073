//! A scale sweep's outputs: one row per web-tier size, as a table, CSV and an SVG
//! chart of throughput against the number of webservers.

use std::fmt::Write as _;

use crate::report::Report;
use crate::stats::{ErrorKind, Kind};

fn kind_p99(r: &Report, kind: Kind) -> f64 {
    r.by_kind.get(kind.name()).map_or(0.0, |k| k.latency_ms.p99)
}

fn kind_rps(r: &Report, kind: Kind) -> f64 {
    r.by_kind
        .get(kind.name())
        .map_or(0.0, |k| k.requests_per_second)
}

fn errors(r: &Report) -> u64 {
    ErrorKind::ALL.iter().map(|&e| r.error(e)).sum()
}

/// The CPU use of a role's hosts in one step: the busiest host's cores, all its
/// hosts' cores, whether any is saturated, and the budget per host.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct RoleCpu {
    max: f64,
    total: f64,
    saturated: bool,
    budget: Option<f64>,
    seen: bool,
}

/// The roles a sweep reports CPU for, in table order (`generator` is loadtest).
const ROLES: [&str; 5] = ["lb", "web", "sqlsvc", "nosqlsvc", "generator"];

fn role_cpu(r: &Report, role: &str) -> RoleCpu {
    r.hosts_cpu
        .iter()
        .filter(|u| u.role == role)
        .fold(RoleCpu::default(), |acc, u| RoleCpu {
            max: acc.max.max(u.cores),
            total: acc.total + u.cores,
            saturated: acc.saturated || u.saturated(),
            budget: acc.budget.or(u.budget),
            seen: true,
        })
}

/// With the machine's cores split: the cores the stores' hosts and the generator
/// used together, and how many they have (the balancer runs beside the webservers).
fn rest_cpu(r: &Report) -> Option<(f64, usize)> {
    let cores = r.other_cores?;
    let used = r
        .hosts_cpu
        .iter()
        .filter(|u| u.role != "web" && u.role != "lb")
        .map(|u| u.cores)
        .sum();
    Some((used, cores))
}

/// `0.82/1`, starred when at least [`crate::hosts::SATURATED`] of the cores.
fn rest_cell(r: &Report) -> String {
    match rest_cpu(r) {
        Some((used, cores)) => format!(
            "{used:.2}/{cores}{}",
            if used >= crate::hosts::SATURATED * cores as f64 {
                "*"
            } else {
                ""
            }
        ),
        None => "-".into(),
    }
}

/// `0.25*`: the busiest host's cores, starred when saturated; `-` when unknown.
fn cpu_cell(c: RoleCpu) -> String {
    if !c.seen {
        return "-".into();
    }
    format!("{:.2}{}", c.max, if c.saturated { "*" } else { "" })
}

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |x| x.to_string())
}

/// The sweep table, as printed.
pub fn table(reports: &[Report]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>10} {:>11} {:>10} {:>10} {:>9} {:>9} {:>9} {:>12} {:>12} {:>8}",
        "webservers",
        "req/s",
        "read/s",
        "write/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "read p99 ms",
        "write p99 ms",
        "errors"
    );
    let emulated = reports.iter().any(|r| r.emulated_hosts);
    let split = reports.iter().any(|r| r.other_cores.is_some());
    if emulated {
        // Same rows, and the hosts' CPU use to the right.
        out.pop();
        let _ = write!(
            out,
            " {:>8} {:>8} {:>8} {:>8} {:>8}",
            "lb cpu", "web cpu", "sql cpu", "nosql cpu", "gen cpu"
        );
        if split {
            let _ = write!(out, " {:>9}", "rest cpu");
        }
        out.push('\n');
    }
    for r in reports {
        let _ = write!(
            out,
            "{:>10} {:>11.1} {:>10.1} {:>10.1} {:>9.2} {:>9.2} {:>9.2} {:>12.2} {:>12.2} {:>8}",
            r.webservers.unwrap_or(0),
            r.requests_per_second,
            kind_rps(r, Kind::Read),
            kind_rps(r, Kind::Write),
            r.latency_ms.p50,
            r.latency_ms.p99,
            r.latency_ms.max,
            kind_p99(r, Kind::Read),
            kind_p99(r, Kind::Write),
            errors(r)
        );
        if emulated {
            for role in ROLES {
                let _ = write!(out, " {:>8}", cpu_cell(role_cpu(r, role)));
            }
            if split {
                let _ = write!(out, " {:>9}", rest_cell(r));
            }
        }
        out.push('\n');
    }
    if emulated {
        let budgets: Vec<String> = ROLES[..4]
            .iter()
            .map(|&role| {
                let budget = reports.iter().find_map(|r| role_cpu(r, role).budget);
                format!(
                    "{role} {}",
                    budget.map_or("unlimited".to_owned(), |b| format!("{b}"))
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "cpu: cores used over the measured window (web: the busiest webserver host), * = at least {:.0}% of the host's budget; budgets per host: {}",
            crate::hosts::SATURATED * 100.0,
            budgets.join(", ")
        );
        if split {
            let _ = writeln!(
                out,
                "rest cpu: the cores sqlsvc, nosqlsvc and this generator used together, of the cores they share apart from the webservers' and the balancer's (* = at least {:.0}%)",
                crate::hosts::SATURATED * 100.0
            );
        }
    }
    out
}

/// The sweep as CSV, one row per webserver count.
pub fn csv(reports: &[Report]) -> String {
    let mut out = String::from(
        "webservers,mode,connections,rate,duration_s,requests,requests_per_second,read_rps,write_rps,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,read_p99_ms,write_p99_ms,errors,mismatches,missed,emulated_hosts,lb_cpu_budget,web_cpu_budget,sqlsvc_cpu_budget,nosqlsvc_cpu_budget,lb_cpu,web_cpu_total,web_cpu_max,sqlsvc_cpu,nosqlsvc_cpu,generator_cpu,saturated,rest_cpu,rest_cores\n",
    );
    for r in reports {
        let l = &r.latency_ms;
        let _ = writeln!(
            out,
            "{},{},{},{},{:.3},{},{:.1},{:.1},{:.1},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{},{},{},{}",
            r.webservers.unwrap_or(0),
            r.params.mode,
            r.params.connections,
            r.params.rate.map_or(String::new(), |x| x.to_string()),
            r.duration_s,
            r.requests,
            r.requests_per_second,
            kind_rps(r, Kind::Read),
            kind_rps(r, Kind::Write),
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            kind_p99(r, Kind::Read),
            kind_p99(r, Kind::Write),
            errors(r),
            r.error(ErrorKind::Mismatch),
            r.missed,
            cpu_csv(r)
        );
    }
    out
}

/// The CSV's host columns: emulated, the four budgets, each role's cores (web as
/// total and busiest host), and the saturated hosts (space-separated).
fn cpu_csv(r: &Report) -> String {
    let c: Vec<RoleCpu> = ROLES.iter().map(|&role| role_cpu(r, role)).collect();
    let cores = |c: RoleCpu, v: f64| {
        if c.seen {
            format!("{v:.3}")
        } else {
            String::new()
        }
    };
    let saturated: Vec<&str> = r
        .hosts_cpu
        .iter()
        .filter(|u| u.saturated())
        .map(|u| u.name.as_str())
        .collect();
    [
        r.emulated_hosts.to_string(),
        opt(c[0].budget),
        opt(c[1].budget),
        opt(c[2].budget),
        opt(c[3].budget),
        cores(c[0], c[0].total),
        cores(c[1], c[1].total),
        cores(c[1], c[1].max),
        cores(c[2], c[2].total),
        cores(c[3], c[3].total),
        cores(c[4], c[4].total),
        saturated.join(" "),
        rest_cpu(r).map_or(String::new(), |(used, _)| format!("{used:.3}")),
        rest_cpu(r).map_or(String::new(), |(_, cores)| cores.to_string()),
    ]
    .join(",")
}

/// A line chart: requests/s (left axis, solid) and p99 latency (right axis, dashed)
/// against the webserver count, with axes, ticks, labelled points and a legend.
pub fn svg(reports: &[Report], title: &str) -> String {
    const W: f64 = 720.0;
    const H: f64 = 440.0;
    const L: f64 = 80.0;
    const R: f64 = 80.0;
    const T: f64 = 60.0;
    const B: f64 = 70.0;
    let pw = W - L - R;
    let ph = H - T - B;
    let n = reports.len().max(1);
    let x_at = |i: usize| {
        if n == 1 {
            L + pw / 2.0
        } else {
            L + pw * i as f64 / (n - 1) as f64
        }
    };
    let rps_max = nice_max(
        reports
            .iter()
            .map(|r| r.requests_per_second)
            .fold(0.0, f64::max),
    );
    let p99_max = nice_max(reports.iter().map(|r| r.latency_ms.p99).fold(0.0, f64::max));
    let y_rps = |v: f64| T + ph - ph * v / rps_max;
    let y_p99 = |v: f64| T + ph - ph * v / p99_max;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="16">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    // Grid and left/right ticks.
    for i in 0..=5 {
        let f = i as f64 / 5.0;
        let y = T + ph - ph * f;
        let _ = writeln!(
            s,
            r##"<line x1="{L}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e5e5"/>"##,
            L + pw
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#1f5fbf">{}</text>"##,
            L - 8.0,
            y + 4.0,
            fmt_num(rps_max * f)
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#c0392b">{}</text>"##,
            L + pw + 8.0,
            y + 4.0,
            fmt_num(p99_max * f)
        );
    }
    // Axes.
    let _ = writeln!(
        s,
        r#"<line x1="{L}" y1="{T}" x2="{L}" y2="{:.1}" stroke="black"/>"#,
        T + ph
    );
    let _ = writeln!(
        s,
        r#"<line x1="{L}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/>"#,
        T + ph,
        L + pw,
        T + ph
    );
    let _ = writeln!(
        s,
        r#"<line x1="{:.1}" y1="{T}" x2="{:.1}" y2="{:.1}" stroke="black"/>"#,
        L + pw,
        L + pw,
        T + ph
    );
    for (i, r) in reports.iter().enumerate() {
        let x = x_at(i);
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="black"/>"#,
            T + ph,
            T + ph + 5.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            T + ph + 20.0,
            r.webservers.unwrap_or(0)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">webservers</text>"#,
        L + pw / 2.0,
        H - 25.0
    );
    let _ = writeln!(
        s,
        r##"<text transform="translate(20,{:.1}) rotate(-90)" text-anchor="middle" fill="#1f5fbf">requests/s</text>"##,
        T + ph / 2.0
    );
    let _ = writeln!(
        s,
        r##"<text transform="translate({:.1},{:.1}) rotate(90)" text-anchor="middle" fill="#c0392b">p99 latency (ms)</text>"##,
        W - 20.0,
        T + ph / 2.0
    );
    // Series.
    let line = |pts: Vec<(f64, f64)>| {
        pts.iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let rps_pts: Vec<(f64, f64)> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| (x_at(i), y_rps(r.requests_per_second)))
        .collect();
    let p99_pts: Vec<(f64, f64)> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| (x_at(i), y_p99(r.latency_ms.p99)))
        .collect();
    let _ = writeln!(
        s,
        r##"<polyline points="{}" fill="none" stroke="#1f5fbf" stroke-width="2.5"/>"##,
        line(rps_pts.clone())
    );
    let _ = writeln!(
        s,
        r##"<polyline points="{}" fill="none" stroke="#c0392b" stroke-width="2" stroke-dasharray="6 4"/>"##,
        line(p99_pts.clone())
    );
    for (r, (x, y)) in reports.iter().zip(&rps_pts) {
        let _ = writeln!(
            s,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="#1f5fbf"/>"##
        );
        let _ = writeln!(
            s,
            r##"<text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#1f5fbf">{}</text>"##,
            y - 10.0,
            fmt_num(r.requests_per_second)
        );
    }
    for (r, (x, y)) in reports.iter().zip(&p99_pts) {
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="7" height="7" fill="#c0392b"/>"##,
            x - 3.5,
            y - 3.5
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#c0392b">{:.1} ms</text>"##,
            x + 8.0,
            y + 16.0,
            r.latency_ms.p99
        );
    }
    // Legend.
    let _ = writeln!(
        s,
        r##"<line x1="{L}" y1="44" x2="{:.1}" y2="44" stroke="#1f5fbf" stroke-width="2.5"/>"##,
        L + 24.0
    );
    let _ = writeln!(s, r#"<text x="{:.1}" y="48">requests/s</text>"#, L + 30.0);
    let _ = writeln!(
        s,
        r##"<line x1="{:.1}" y1="44" x2="{:.1}" y2="44" stroke="#c0392b" stroke-width="2" stroke-dasharray="6 4"/>"##,
        L + 130.0,
        L + 154.0
    );
    let _ = writeln!(s, r#"<text x="{:.1}" y="48">p99 latency</text>"#, L + 160.0);
    s.push_str("</svg>\n");
    s
}

/// A round axis maximum at or above `v` (1, 2 or 5 times a power of ten).
fn nice_max(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if v <= m * p {
            return m * p;
        }
    }
    10.0 * p
}

/// The index of the median of `values` (the lower of the two middle ones when there
/// is an even number of them); None when empty.
fn median_index(values: &[f64]) -> Option<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order.get(values.len().saturating_sub(1) / 2).copied()
}

/// A sweep run in rounds: `rps[r][i]` is round r's req/s at `counts[i]` webservers.
/// Returns a table of each count's runs, their median, the median's ratio to the
/// first count's median, and each round's own ratios to its first count (with their
/// median), and, for each count, the round of its median run.
pub fn rounds(counts: &[usize], rps: &[Vec<f64>]) -> (String, Vec<usize>) {
    if counts.is_empty() || rps.is_empty() || rps.iter().any(|round| round.len() != counts.len()) {
        return (String::new(), Vec::new());
    }
    let n = rps.len();
    let column = |i: usize| -> Vec<f64> { rps.iter().map(|round| round[i]).collect() };
    let picks: Vec<usize> = (0..counts.len())
        .map(|i| median_index(&column(i)).unwrap_or(0))
        .collect();
    let mut out = String::new();
    let _ = write!(out, "{:>10}", "webservers");
    for r in 1..=n {
        let _ = write!(out, " {:>9}", format!("round {r}"));
    }
    let _ = writeln!(
        out,
        " {:>9} {:>8}   each round's ratio (median)",
        "median", "ratio"
    );
    let first = picks.first().map_or(0.0, |&r| rps[r][0]);
    for (i, &count) in counts.iter().enumerate() {
        let _ = write!(out, "{count:>10}");
        for round in rps {
            let _ = write!(out, " {:>9.1}", round[i]);
        }
        let median = rps[picks[i]][i];
        let _ = write!(out, " {median:>9.1}");
        if i > 0 && first > 0.0 {
            let own: Vec<f64> = rps
                .iter()
                .map(|round| {
                    if round[0] > 0.0 {
                        round[i] / round[0]
                    } else {
                        0.0
                    }
                })
                .collect();
            let own_median = median_index(&own).map_or(0.0, |k| own[k]);
            let _ = write!(out, " {:>7.2}x  ", median / first);
            for v in &own {
                let _ = write!(out, " {v:.2}");
            }
            let _ = write!(out, " ({own_median:.2}x)");
        }
        out.push('\n');
    }
    (out, picks)
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_report_each_counts_median_run_and_the_ratios() {
        assert_eq!(median_index(&[]), None);
        assert_eq!(median_index(&[5.0]), Some(0));
        assert_eq!(median_index(&[3.0, 1.0, 2.0]), Some(2));
        assert_eq!(
            median_index(&[4.0, 1.0, 3.0, 2.0]),
            Some(3),
            "the lower middle"
        );
        let rps = vec![
            vec![1000.0, 1800.0, 3300.0],
            vec![1200.0, 2000.0, 3000.0],
            vec![1100.0, 2300.0, 3600.0],
        ];
        assert_eq!(rounds(&[1, 2], &[]), (String::new(), Vec::new()));
        assert_eq!(
            rounds(&[1, 2], &[vec![1.0]]).1,
            Vec::<usize>::new(),
            "a short round"
        );
        let (table, picks) = rounds(&[1, 2, 4], &rps);
        // Medians 1100, 2000, 3300: from rounds 3, 2 and 1.
        assert_eq!(picks, [2, 1, 0]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(
            lines[0].contains("round 3") && lines[0].contains("median"),
            "{table}"
        );
        assert!(lines[1].trim_end().ends_with("1100.0"), "{table}");
        // 2000 / 1100 = 1.82; own ratios 1.80, 1.67, 2.09, median 1.80.
        assert!(lines[2].contains("1.82x"), "{table}");
        assert!(lines[2].contains("1.80 1.67 2.09 (1.80x)"), "{table}");
        // 3300 / 1100 = 3.00; own 3.30, 2.50, 3.27, median 3.27.
        assert!(lines[3].contains("3.00x"), "{table}");
        assert!(lines[3].contains("(3.27x)"), "{table}");
    }

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(1234.0), 2000.0);
        assert_eq!(nice_max(4999.0), 5000.0);
        assert_eq!(nice_max(100.0), 100.0);
    }
}
