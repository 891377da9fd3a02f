//! Logging: tracing events of the engine, file and WAL layers go to stderr
//! when `RIO_LOG` is set (env-filter syntax), and to a C callback when one
//! is registered. Until either is asked for, no subscriber is installed and
//! every tracing macro costs one relaxed load.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use parking_lot::RwLock;
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

static SINK: RwLock<Option<LogSink>> = RwLock::new(None);
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
        // The read lock lets sinks run concurrently; replacing the sink
        // waits until running calls have returned.
        if let Some(sink) = SINK.read().as_ref() {
            sink(level, event.metadata().target(), &text.0);
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
