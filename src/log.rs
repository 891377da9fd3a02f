//! Logging: tracing events of the engine, file and WAL layers go to stderr
//! when `RIO_LOG` is set (env-filter syntax), and to a C callback when one
//! is registered. Until either is asked for, no subscriber is installed and
//! every tracing macro costs one relaxed load.
//!
//! The callback is never called while librio holds a lock (it may call
//! back into librio): code that logs while holding one (the WAL's state
//! lock, a group-commit leader's role) runs inside a [`defer`] scope, and
//! records emitted there reach the sink when the outermost scope of the
//! thread ends, after the locks are released.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use parking_lot::RecursiveRwLock;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::EnvFilter;

use crate::error::{Error, Result};

pub const ENV_LOG: &str = "RIO_LOG";

/// Receives a log record: level (1 = error .. 5 = trace), target, message.
pub type LogSink = Box<dyn Fn(u8, &str, &str) + Send + Sync>;

static SINK: RecursiveRwLock<Option<LogSink>> = RecursiveRwLock::new(None);
/// Most verbose level delivered to the sink (0 = none).
static SINK_LEVEL: AtomicU8 = AtomicU8::new(0);
static INSTALLED: OnceLock<std::result::Result<(), String>> = OnceLock::new();

pub fn level_number(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

/// Forwards events to the registered sink.
struct SinkLayer;

/// The sink's level, as a per-layer filter: a plain `Layer::enabled` would
/// filter events out for the stderr layer too.
fn sink_wants(meta: &Metadata<'_>) -> bool {
    level_number(meta.level()) <= SINK_LEVEL.load(Ordering::Relaxed)
}

impl<S: Subscriber> Layer<S> for SinkLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let level = level_number(event.metadata().level());
        if level > SINK_LEVEL.load(Ordering::Relaxed) {
            return;
        }
        let mut text = MessageText::default();
        event.record(&mut text);
        let target = event.metadata().target();
        let held = DEFERRED.try_with(|d| d.borrow_mut().hold(level, target, &text.0)).unwrap_or(false);
        if !held {
            deliver(level, target, &text.0);
        }
    }
}

/// Calls the sink. The read lock lets sinks run concurrently and replacing
/// the sink waits until running calls have returned; the lock prefers
/// readers, so a callback whose librio calls log again (a recursive read)
/// does not deadlock behind a waiting `set_sink`.
fn deliver(level: u8, target: &str, message: &str) {
    if let Some(sink) = SINK.read().as_ref() {
        sink(level, target, message);
    }
}

/// Records held back while a thread is inside `defer` scopes.
#[derive(Default)]
struct Deferred {
    depth: usize,
    records: Vec<(u8, String, String)>,
    dropped: usize,
}

/// Most records one thread holds back; later ones are counted and
/// reported as a summary (a scope never logs more than a few).
const MAX_DEFERRED: usize = 256;

impl Deferred {
    /// Keeps the record if a scope is open; false means deliver it now.
    fn hold(&mut self, level: u8, target: &str, message: &str) -> bool {
        if self.depth == 0 {
            return false;
        }
        if self.records.len() < MAX_DEFERRED {
            self.records.push((level, target.to_string(), message.to_string()));
        } else {
            self.dropped += 1;
        }
        true
    }
}

thread_local! {
    static DEFERRED: RefCell<Deferred> = RefCell::new(Deferred::default());
}

/// While alive, log records of this thread are held back; when the
/// outermost one drops they are delivered. Declare it first in a function
/// that takes locks, so it drops after them.
pub(crate) struct DeferScope(());

pub(crate) fn defer() -> DeferScope {
    let _ = DEFERRED.try_with(|d| d.borrow_mut().depth += 1);
    DeferScope(())
}

impl Drop for DeferScope {
    fn drop(&mut self) {
        let ready = DEFERRED
            .try_with(|d| {
                let mut d = d.borrow_mut();
                d.depth -= 1;
                if d.depth > 0 || (d.records.is_empty() && d.dropped == 0) {
                    return None;
                }
                Some((std::mem::take(&mut d.records), std::mem::take(&mut d.dropped)))
            })
            .ok()
            .flatten();
        // Delivered with no borrow held: the sink may log (and defer) again.
        if let Some((records, dropped)) = ready {
            for (level, target, message) in &records {
                deliver(*level, target, message);
            }
            if dropped > 0 {
                deliver(2, "rio::log", &format!("{dropped} log records were dropped (more than {MAX_DEFERRED} held back)"));
            }
        }
    }
}

/// "message k=v k=v" from an event's fields.
#[derive(Default)]
struct MessageText(String);

impl Visit for MessageText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }
}

/// Installs the global subscriber once: a stderr layer filtered by
/// `RIO_LOG` when it is set, and the sink layer. Does nothing (and costs
/// nothing later) when neither is wanted. An invalid `RIO_LOG` is an error
/// naming the variable, reported by every call.
pub(crate) fn init(want_sink: bool) -> Result<()> {
    let env = std::env::var(ENV_LOG).ok().filter(|v| !v.trim().is_empty());
    if env.is_none() && !want_sink && INSTALLED.get().is_none() {
        return Ok(());
    }
    let installed = INSTALLED.get_or_init(|| {
        let stderr = match &env {
            Some(spec) => Some(
                EnvFilter::try_new(spec).map_err(|e| format!("{ENV_LOG}={spec:?}: invalid filter: {e}"))?,
            ),
            None => None,
        }
        .map(|filter| tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter));
        // Another global subscriber (a Rust host's) wins; ours is then unused.
        let _ = tracing_subscriber::registry().with(stderr).with(SinkLayer.with_filter(filter_fn(sink_wants))).try_init();
        Ok(())
    });
    installed.clone().map_err(Error::invalid)
}

/// Registers (or, with `None`, removes) the log sink for events at
/// `max_level` (1..=5) and more severe. Returns after any running call of
/// the previous sink has finished.
pub fn set_sink(max_level: u8, sink: Option<LogSink>) -> Result<()> {
    if sink.is_some() {
        init(true)?;
    }
    let mut slot = SINK.write();
    SINK_LEVEL.store(if sink.is_some() { max_level } else { 0 }, Ordering::Relaxed);
    *slot = sink;
    drop(slot);
    // Levels changed: let tracing re-ask every callsite.
    tracing::callsite::rebuild_interest_cache();
    Ok(())
}
