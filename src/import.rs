//! `crowsnest import FILE`: loads a Prometheus text exposition file (with timestamps) or an
//! OpenMetrics file either straight into a store's data directory (`--data-dir`, offline backfill:
//! the store must not be running) or into a running store over remote_write 1.0 (`--url`).
//! The file is read in chunks of whole lines, so memory stays flat; bad lines are reported with
//! their line numbers and the good ones are still imported; a progress bar (indicatif) tracks the
//! bytes read and a summary line closes the run. Exit status 1 when anything was refused.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use crowsnest_store::import::{ImportSummary, batches, group_samples, import_text};
use crowsnest_store::{Db, StoreConfig};
use crowsnest_wire::WriteRequest;
use crowsnest_wire::exposition::{self, Format, LineError};
use crowsnest_wire::remote::headers;
use indicatif::{ProgressBar, ProgressStyle};

/// Bytes of text parsed at once.
const CHUNK_BYTES: usize = 4 << 20;
/// Bad lines printed before the rest is only counted.
const MAX_PRINTED_ERRORS: usize = 20;
/// Attempts per remote_write batch when the store answers 5xx or the connection fails.
const MAX_ATTEMPTS: u32 = 5;

/// The text dialect of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// OpenMetrics if the file ends with `# EOF`, else Prometheus text.
    Auto,
    /// Prometheus text 0.0.4 (timestamps in integer milliseconds).
    Prometheus,
    /// OpenMetrics 1.0 text (timestamps in float seconds).
    Openmetrics,
}

/// `crowsnest import` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The file to import (`-` reads standard input).
    pub file: PathBuf,
    /// A running store's base URL (e.g. `http://127.0.0.1:9300`): samples go to `/api/v1/write`.
    #[arg(long, conflicts_with = "data_dir", required_unless_present = "data_dir")]
    pub url: Option<String>,
    /// Offline backfill into this store data directory (what `crowsnest store --data-dir` uses).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Config file whose `store:` section (retention, limits) applies with `--data-dir`.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Input dialect.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: FormatArg,
    /// Samples per remote_write request.
    #[arg(long, default_value_t = 20_000)]
    pub batch_samples: usize,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// File holding a token for a store whose `write` group requires one (sent as Bearer).
    #[arg(long, value_name = "FILE", requires = "url")]
    pub bearer_token_file: Option<PathBuf>,
    /// PEM CA bundle to verify an https store's certificate with (default: system roots).
    #[arg(long, value_name = "FILE", requires = "url")]
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate of an https store (self-signed test setups).
    #[arg(long, requires = "url")]
    pub insecure: bool,
}

/// Runs the import; prints problems to stderr and the summary line to stdout.
pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    let (reader, size, format) = open_input(&args)?;
    let progress = progress_bar(size, args.quiet);
    let summary = match (&args.url, &args.data_dir) {
        (Some(url), _) => {
            let url = format!("{}/api/v1/write", url.trim_end_matches('/'));
            let a = args.clone();
            let pb = progress.clone();
            // A runtime of our own on its own thread, so `run` works whether or not the caller is
            // inside one.
            std::thread::spawn(move || -> anyhow::Result<ImportSummary> {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                rt.block_on(send_remote(reader, format, &url, &a, &pb))
            })
            .join()
            .map_err(|_| anyhow::anyhow!("import thread panicked"))??
        }
        (None, Some(dir)) => backfill(reader, format, dir, args.config.as_deref(), &progress)?,
        (None, None) => bail!("give --url (running store) or --data-dir (offline backfill)"),
    };
    progress.finish_and_clear();
    report(&summary)
}

fn open_input(args: &ImportArgs) -> anyhow::Result<(Box<dyn BufRead + Send>, Option<u64>, Format)> {
    if args.file.as_os_str() == "-" {
        let format = if args.format == FormatArg::Openmetrics { Format::OpenMetrics } else { Format::Prometheus };
        return Ok((Box::new(BufReader::new(std::io::stdin())), None, format));
    }
    let path = &args.file;
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = f.metadata().map(|m| m.len()).ok();
    let format = match args.format {
        FormatArg::Prometheus => Format::Prometheus,
        FormatArg::Openmetrics => Format::OpenMetrics,
        FormatArg::Auto => detect_format(&mut f).with_context(|| format!("reading {}", path.display()))?,
    };
    Ok((Box::new(BufReader::with_capacity(1 << 20, f)), size, format))
}

/// OpenMetrics when the file's tail is `# EOF`; leaves the file at its start.
fn detect_format(f: &mut File) -> std::io::Result<Format> {
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(64)))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    f.seek(SeekFrom::Start(0))?;
    Ok(Format::detect(None, &String::from_utf8_lossy(&tail)))
}

fn progress_bar(size: Option<u64>, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = match size {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let template = if size.is_some() {
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta}) {msg}"
    } else {
        "{spinner} [{elapsed_precise}] {bytes} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// One chunk of whole lines: its text, the number of lines before it, and its size in bytes.
struct Chunk {
    text: String,
    first_line: usize,
    bytes: u64,
}

/// Reads chunks of about [`CHUNK_BYTES`], always ending at a line end.
struct Chunks<R> {
    reader: R,
    lines_read: usize,
}

impl<R: BufRead> Iterator for Chunks<R> {
    type Item = std::io::Result<Chunk>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = Vec::with_capacity(CHUNK_BYTES + 4096);
        let first_line = self.lines_read;
        while buf.len() < CHUNK_BYTES {
            match self.reader.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => self.lines_read += 1,
                Err(e) => return Some(Err(e)),
            }
        }
        if buf.is_empty() {
            return None;
        }
        let bytes = buf.len() as u64;
        let text = String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Some(Ok(Chunk { text, first_line, bytes }))
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Offline: open the data directory and append chunk by chunk, then flush.
fn backfill(
    reader: Box<dyn BufRead + Send>,
    format: Format,
    dir: &Path,
    config: Option<&Path>,
    pb: &ProgressBar,
) -> anyhow::Result<ImportSummary> {
    let mut cfg: StoreConfig = crate::config::Config::load(config)?.store;
    cfg.data_dir = dir.to_path_buf();
    let db = Db::open(cfg, &crowsnest_wire::ops::new_registry())
        .with_context(|| format!("opening the store in {} (is a store running on it?)", dir.display()))?;
    let now = now_ms();
    let mut total = ImportSummary::default();
    for chunk in (Chunks { reader, lines_read: 0 }) {
        let chunk = chunk.context("reading the input")?;
        let s = import_text(&db, &chunk.text, format, now, chunk.first_line)?;
        print_line_errors(&s.line_errors, total.line_errors.len(), pb);
        total.merge(s);
        pb.inc(chunk.bytes);
        pb.set_message(format!("{} samples", total.accepted));
    }
    db.close().context("flushing the store")?;
    Ok(total)
}

/// Online: parse chunk by chunk and POST remote_write batches.
async fn send_remote(
    reader: Box<dyn BufRead + Send>,
    format: Format,
    url: &str,
    args: &ImportArgs,
    pb: &ProgressBar,
) -> anyhow::Result<ImportSummary> {
    let http = crowsnest_web::HttpClientConfig {
        bearer_token_file: args.bearer_token_file.clone(),
        tls: crowsnest_web::ClientTlsConfig {
            ca_file: args.ca_file.clone(),
            insecure_skip_verify: args.insecure,
            ..Default::default()
        },
        ..Default::default()
    };
    let client = http.client_builder()?.timeout(Duration::from_secs(120)).build()?;
    let now = now_ms();
    let mut total = ImportSummary::default();
    for chunk in (Chunks { reader, lines_read: 0 }) {
        let chunk = chunk.context("reading the input")?;
        let mut parsed = exposition::parse(&chunk.text, format);
        for e in &mut parsed.errors {
            e.line += chunk.first_line;
        }
        print_line_errors(&parsed.errors, total.line_errors.len(), pb);
        let series = group_samples(parsed.samples, now);
        let mut part = ImportSummary {
            samples: series.iter().map(|s| s.samples.len() as u64).sum(),
            series: series.len() as u64,
            line_errors: parsed.errors,
            ..Default::default()
        };
        let mut metadata = parsed.metadata;
        for batch in batches(series, args.batch_samples.max(1)) {
            let n: u64 = batch.iter().map(|s| s.samples.len() as u64).sum();
            let body = WriteRequest { timeseries: batch, metadata: std::mem::take(&mut metadata) }.encode_snappy();
            match post_batch(&client, url, body).await? {
                None => part.accepted += n,
                Some(problem) => {
                    pb.suspend(|| eprintln!("store refused part of a batch: {problem}"));
                    part.refused_batches.push(problem);
                }
            }
        }
        total.merge(part);
        pb.inc(chunk.bytes);
        pb.set_message(format!("{} samples sent", total.accepted));
    }
    Ok(total)
}

/// Sends one batch. `Ok(None)` on 2xx, `Ok(Some(message))` when the store refused (4xx: some
/// samples were not stored, the rest were), `Err` when retries for 5xx/connection errors ran out.
async fn post_batch(client: &reqwest::Client, url: &str, body: Vec<u8>) -> anyhow::Result<Option<String>> {
    let mut delay = Duration::from_millis(200);
    let mut last = String::new();
    for _ in 0..MAX_ATTEMPTS {
        let resp = client
            .post(url)
            .header(headers::CONTENT_TYPE, headers::PROTOBUF)
            .header(headers::CONTENT_ENCODING, headers::SNAPPY)
            .header(headers::VERSION, headers::VERSION_1)
            .body(body.clone())
            .send()
            .await;
        match resp {
            Ok(r) if r.status().is_success() => return Ok(None),
            Ok(r) if r.status().is_client_error() => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                let msg = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or(text);
                return Ok(Some(format!("HTTP {status}: {msg}")));
            }
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    bail!("sending to {url} failed after {MAX_ATTEMPTS} attempts: {last}")
}

fn print_line_errors(errors: &[LineError], already: usize, pb: &ProgressBar) {
    for e in errors.iter().take(MAX_PRINTED_ERRORS.saturating_sub(already)) {
        pb.suspend(|| eprintln!("bad line {}: {}", e.line, e.message));
    }
}

fn report(s: &ImportSummary) -> anyhow::Result<()> {
    if s.line_errors.len() > MAX_PRINTED_ERRORS {
        eprintln!("... and {} more bad lines", s.line_errors.len() - MAX_PRINTED_ERRORS);
    }
    if !s.rejected.is_empty() {
        eprintln!("{}", crowsnest_store::import::describe_rejections(&s.rejected));
    }
    println!("{}", s.summary_line());
    if s.has_problems() {
        bail!(
            "{} bad lines, {} rejected series, {} refused batches; the good lines were imported",
            s.line_errors.len(),
            s.rejected.len(),
            s.refused_batches.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_end_at_line_ends_and_count_lines() {
        let text = "a 1 1\n".repeat(CHUNK_BYTES / 6 + 10);
        let chunks: Vec<Chunk> =
            Chunks { reader: BufReader::new(text.as_bytes()), lines_read: 0 }.collect::<Result<_, _>>().unwrap();
        assert_eq!(chunks.len(), 2);
        assert!(chunks[0].text.ends_with('\n'));
        assert_eq!(chunks[1].first_line, chunks[0].text.lines().count());
        assert_eq!(chunks.iter().map(|c| c.bytes).sum::<u64>(), text.len() as u64);
    }

    #[test]
    fn detects_openmetrics_by_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.om");
        std::fs::write(&p, "a 1 1.5\n# EOF\n").unwrap();
        let mut f = File::open(&p).unwrap();
        assert_eq!(detect_format(&mut f).unwrap(), Format::OpenMetrics);
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert!(s.starts_with("a 1"), "rewound");
    }
}
