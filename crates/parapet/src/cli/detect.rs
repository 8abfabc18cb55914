//! `parapet detect test`: evaluates Sigma rules against a file of events, offline.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parapet_detect::{Correlator, CorrelatorConfig, Detection, Detector, Matches, RuleSet};
use parapet_types::SystemClock;
use serde::Serialize;
use serde_json::Value;

use super::output::note;

/// Lines read and evaluated together (split between the worker threads).
const BATCH: usize = 8_192;
/// Unreadable events reported one by one before only counting them.
const MAX_REPORTED: usize = 10;

#[derive(Debug, clap::Subcommand)]
pub enum DetectCommand {
    /// Evaluate Sigma rules against a file of events, offline, and print every match.
    ///
    /// Rules: every .yml/.yaml file under each --rules directory (searched recursively),
    /// detection and correlation rules. Rules that cannot be read are reported on standard
    /// error with their file, line and reason (with --strict they make the command fail).
    ///
    /// Events: JSON lines (one object a line), or a stream of JSON objects (pretty-printed, as
    /// evtx_dump writes them); "-" reads standard input. Windows events in the evtx_dump shape
    /// (Event.System / Event.EventData) are flattened to Sigma's field names and routed to the
    /// rules of their log source by channel and event id (Sysmon categories, Windows services).
    /// Other events are evaluated as they are against every rule. Correlation windows use the
    /// event's time (@timestamp, timestamp, TimeCreated, EventTime, time).
    Test(TestArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct TestArgs {
    /// A directory (searched recursively) or file of Sigma rules; repeat for several.
    #[arg(long = "rules", value_name = "DIR", required = true)]
    pub rules: Vec<PathBuf>,
    /// The events: JSON lines, or concatenated JSON objects; "-" for standard input.
    #[arg(long, value_name = "FILE.jsonl")]
    pub events: PathBuf,
    /// Print one JSON object a line: rule_id, title, level, event_index (the 0-based line of
    /// the event in a JSON-lines file, else its position in the stream).
    #[arg(long)]
    pub json: bool,
    /// Fail when any rule cannot be read or compiled (by default they are reported and left
    /// out).
    #[arg(long)]
    pub strict: bool,
    /// Worker threads (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print no summary on standard error.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Serialize)]
struct MatchLine<'a> {
    rule_id: &'a str,
    title: &'a str,
    level: Option<&'a str>,
    event_index: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    correlation: bool,
}

pub fn run(cmd: DetectCommand) -> anyhow::Result<()> {
    match cmd {
        DetectCommand::Test(a) => test(a),
    }
}

/// One event's outcome from a worker.
enum Outcome {
    Skip,
    Bad(String),
    Done {
        /// Kept only when correlations need the fields.
        fields: Option<Value>,
        matches: Matches,
    },
}

/// The read-only part, shared by the worker threads.
struct Evaluator {
    detector: Detector,
    /// Whether correlations need the events' fields after detection.
    keep: bool,
}

struct Run {
    eval: Evaluator,
    correlator: Correlator,
    json: bool,
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
    events: u64,
    matched: u64,
    bad: u64,
    first_bad: Option<String>,
}

impl Evaluator {
    fn evaluate(&self, value: &Value) -> Outcome {
        let keep = self.keep;
        match parapet_detect::prepare(value) {
            Some((flat, source)) => {
                let matches = self.detector.evaluate(&flat, Some(&source));
                Outcome::Done {
                    fields: keep.then_some(flat),
                    matches,
                }
            }
            None if value.is_object() => {
                let matches = self.detector.evaluate(value, None);
                Outcome::Done {
                    fields: keep.then(|| value.clone()),
                    matches,
                }
            }
            None => Outcome::Bad("not a JSON object".into()),
        }
    }

    fn evaluate_line(&self, line: &str) -> Outcome {
        if line.trim().is_empty() {
            return Outcome::Skip;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) => self.evaluate(&v),
            Err(e) => Outcome::Bad(format!("not valid JSON: {e}")),
        }
    }
}

impl Run {
    /// Prints one event's matches and feeds the correlations, in event order.
    fn emit(&mut self, index: u64, outcome: Outcome) -> anyhow::Result<()> {
        match outcome {
            Outcome::Skip => Ok(()),
            Outcome::Bad(reason) => {
                self.bad += 1;
                let what = format!("event {index}: {reason}");
                if self.bad <= MAX_REPORTED as u64 {
                    note(&format!("warning: {what}"));
                }
                self.first_bad.get_or_insert(what);
                Ok(())
            }
            Outcome::Done { fields, matches } => {
                self.events += 1;
                let mut found = matches.detections();
                if let Some(fields) = fields
                    && !matches.is_empty()
                {
                    found.extend(self.correlator.process(&fields, matches));
                }
                for d in &found {
                    self.matched += 1;
                    self.print(index, d)?;
                }
                Ok(())
            }
        }
    }

    fn print(&mut self, index: u64, d: &Detection) -> anyhow::Result<()> {
        let result = if self.json {
            let line = MatchLine {
                rule_id: &d.rule_id,
                title: &d.title,
                level: d.level.as_deref(),
                event_index: index,
                correlation: d.correlation,
            };
            serde_json::to_writer(&mut self.out, &line)
                .map_err(std::io::Error::other)
                .and_then(|()| self.out.write_all(b"\n"))
        } else {
            writeln!(
                self.out,
                "event {index}  {}  {}  {}{}",
                d.level.as_deref().unwrap_or("-"),
                d.rule_id,
                super::output::clean(&d.title),
                if d.correlation { "  (correlation)" } else { "" }
            )
        };
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other.context("cannot write to standard output"),
        }
    }
}

fn test(args: TestArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let (set, mut problems) = RuleSet::load(&args.rules);
    let (detector, errs) = Detector::build(&set);
    problems.extend(errs);
    let (correlator, errs) =
        Correlator::build(&set, CorrelatorConfig::default(), Arc::new(SystemClock));
    problems.extend(errs);
    for p in &problems {
        note(&format!("warning: {p}"));
    }
    if args.strict && !problems.is_empty() {
        bail!(
            "{} rule problem(s) (--strict); the first: {}",
            problems.len(),
            problems
                .first()
                .map(ToString::to_string)
                .unwrap_or_default()
        );
    }
    if detector.rule_count() == 0 {
        bail!(
            "no usable Sigma rule found under {}",
            args.rules
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !args.quiet {
        note(&format!(
            "loaded {} detection and {} correlation rules from {} files in {:.1} s ({} problems)",
            detector.rule_count(),
            correlator.correlation_count(),
            set.files,
            started.elapsed().as_secs_f64(),
            problems.len()
        ));
    }
    drop(set);

    let (reader, size): (Box<dyn Read>, Option<u64>) = if args.events.as_os_str() == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let f = File::open(&args.events)
            .with_context(|| format!("cannot open {}", args.events.display()))?;
        let size = f.metadata().ok().map(|m| m.len());
        (Box::new(f), size)
    };
    let bar = progress(size, args.quiet);
    let reader = BufReader::with_capacity(1 << 20, bar.wrap_read(reader));
    let threads = args
        .threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .max(1);
    let mut run = Run {
        eval: Evaluator {
            detector,
            keep: correlator.correlation_count() > 0,
        },
        correlator,
        json: args.json,
        out: std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock()),
        events: 0,
        matched: 0,
        bad: 0,
        first_bad: None,
    };
    let eval_started = Instant::now();
    evaluate_stream(&mut run, reader, threads)?;
    bar.finish_and_clear();
    match run.out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(e).context("cannot write to standard output");
        }
        _ => {}
    }
    let secs = eval_started.elapsed().as_secs_f64();
    if !args.quiet {
        note(&format!(
            "{} events, {} matches in {:.2} s ({:.0} events/s)",
            run.events,
            run.matched,
            secs,
            run.events as f64 / secs.max(1e-9)
        ));
    }
    if run.bad > 0 {
        bail!(
            "{} event(s) in {} could not be evaluated; the first: {}",
            run.bad,
            args.events.display(),
            run.first_bad.unwrap_or_default()
        );
    }
    Ok(())
}

fn progress(size: Option<u64>, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(size, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} evaluating {bytes}/{total_bytes} [{bar:30}] {binary_bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Reads the events (JSON lines, else a stream of JSON values) and evaluates them on `threads`
/// threads, printing in event order.
fn evaluate_stream(run: &mut Run, mut reader: impl BufRead, threads: usize) -> anyhow::Result<()> {
    // The first non-blank line decides: a whole JSON value means JSON lines.
    let mut pending: Vec<String> = Vec::new();
    let mut first_index = 0u64;
    loop {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .context("cannot read the events")?;
        if n == 0 {
            break;
        }
        let blank = line.trim().is_empty();
        let whole = !blank && serde_json::from_str::<serde::de::IgnoredAny>(&line).is_ok();
        pending.push(line);
        if blank {
            continue;
        }
        if !whole {
            // Not JSON lines: read the rest as a stream of JSON values.
            let mut text = pending.concat();
            reader
                .read_to_string(&mut text)
                .context("cannot read the events")?;
            return evaluate_values(run, &text, threads);
        }
        break;
    }
    loop {
        while pending.len() < BATCH {
            let mut line = String::new();
            let n = reader
                .read_line(&mut line)
                .context("cannot read the events")?;
            if n == 0 {
                break;
            }
            pending.push(line);
        }
        if pending.is_empty() {
            return Ok(());
        }
        let outcomes = parallel(&pending, threads, |l| run.eval.evaluate_line(l))?;
        for (k, outcome) in outcomes.into_iter().enumerate() {
            run.emit(first_index + k as u64, outcome)?;
        }
        first_index += pending.len() as u64;
        pending.clear();
    }
}

fn evaluate_values(run: &mut Run, text: &str, threads: usize) -> anyhow::Result<()> {
    let mut values = Vec::new();
    for (i, v) in serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .enumerate()
    {
        match v {
            Ok(Value::Array(items)) if i == 0 => values.extend(items),
            Ok(v) => values.push(v),
            Err(e) => bail!("the events are neither JSON lines nor a stream of JSON values: {e}"),
        }
    }
    for (b, chunk) in values.chunks(BATCH).enumerate() {
        let outcomes = parallel(chunk, threads, |v| run.eval.evaluate(v))?;
        for (k, outcome) in outcomes.into_iter().enumerate() {
            run.emit((b * BATCH + k) as u64, outcome)?;
        }
    }
    Ok(())
}

/// Maps `f` over `items` on up to `threads` scoped threads, keeping the order.
fn parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> anyhow::Result<Vec<R>> {
    if threads <= 1 || items.len() < 64 {
        return Ok(items.iter().map(&f).collect());
    }
    let per = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|chunk| {
                let f = &f;
                s.spawn(move || chunk.iter().map(f).collect::<Vec<R>>())
            })
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part),
                Err(_) => bail!("an evaluation thread failed"),
            }
        }
        Ok(out)
    })
}
