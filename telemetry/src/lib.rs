//! What the control plane and the agent tell about themselves: the process log on stderr and, when an OTLP
//! endpoint is configured, OpenTelemetry traces. Both come from the same `tracing` spans, so a span that is logged
//! is also exported; a task's trace context travels with it (stored with the task, sent in its assignment) in the
//! W3C `traceparent` format, which joins the spans of the API, the queue, the agent and the cluster into one trace.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The filtered registry every process's log layer is stacked on.
pub type Base = tracing_subscriber::layer::Layered<EnvFilter, Registry>;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("the OTLP endpoint {endpoint:?} is not usable: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("a global tracing subscriber is installed already")]
    AlreadyInstalled,
}

/// Where traces go: an OTLP/HTTP collector beside the process (`http://127.0.0.1:4318`; spans are posted to
/// `/v1/traces`).
#[derive(Debug, Clone)]
pub struct OtlpExport {
    pub endpoint: String,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// `service.instance.id`: tells replicas (or agents) apart.
    pub instance: String,
}

/// Keeps the exporter running; dropping it sends the spans still buffered.
#[must_use = "dropping it stops the export of traces"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Nothing is left to report a failed flush to: the log is being torn down with it.
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber: `filter`, the process's own log layer, and the OpenTelemetry layer when
/// `otlp` is set. Spans below `filter`'s level are neither logged nor exported.
pub fn install<L>(
    filter: EnvFilter,
    log: L,
    otlp: Option<&OtlpExport>,
) -> Result<Telemetry, TelemetryError>
where
    L: Layer<Base> + Send + Sync + 'static,
{
    let provider = otlp.map(tracer_provider).transpose()?;
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer(env!("CARGO_PKG_NAME")))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(log)
        .with(traces)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    TRACES_ENABLED.store(provider.is_some(), Ordering::Relaxed);
    Ok(Telemetry { provider })
}

static TRACES_ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: callers skip work that only feeds traces (reading a stored trace context) when not.
pub fn traces_enabled() -> bool {
    TRACES_ENABLED.load(Ordering::Relaxed)
}

fn tracer_provider(otlp: &OtlpExport) -> Result<SdkTracerProvider, TelemetryError> {
    let endpoint = format!("{}/v1/traces", otlp.endpoint.trim_end_matches('/'));
    let invalid = |reason: String| TelemetryError::Endpoint {
        endpoint: otlp.endpoint.clone(),
        reason,
    };
    // Built without TLS (the blocking client has no TLS feature here): a collector beside the process forwards.
    if !endpoint.starts_with("http://") {
        return Err(invalid("not an http:// URL".into()));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()
        .map_err(|error| invalid(error.to_string()))?;
    let resource = Resource::builder_empty()
        .with_service_name(otlp.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.instance.id",
            otlp.instance.clone(),
        ))
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The W3C `traceparent` of the current span, when traces are on and the span is recorded.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// The W3C `traceparent` of `span`, when traces are on and the span is recorded.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the span `traceparent` names (another process's, or one stored with a task). An
/// unreadable `traceparent` leaves `span` where it is: a broken trace must not stop the work.
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// The trace id (32 hex digits) of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`).
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("00"), Some(trace), Some(span), Some(flags), None)
            if is_hex(trace, 32) && is_hex(span, 16) && is_hex(flags, 2) =>
        {
            Some(trace)
        }
        _ => None,
    }
}

fn is_hex(text: &str, length: usize) -> bool {
    text.len() == length
        && text
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_come_only_from_well_formed_traceparents() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id(good), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(trace_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn without_an_exporter_there_is_no_trace_context() {
        let span = tracing::info_span!("untraced");
        assert_eq!(traceparent_of(&span), None);
        // A parent that cannot be read is ignored.
        set_parent(&span, "not a traceparent");
    }

    #[test]
    fn a_traceparent_set_as_parent_is_the_one_a_child_continues() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let remote = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
            let span = tracing::info_span!("task.apply");
            set_parent(&span, remote);
            let child = span.in_scope(|| tracing::info_span!("object.apply"));
            let continued = traceparent_of(&child).expect("the child is traced");
            assert_eq!(trace_id(&continued), trace_id(remote));
            assert_ne!(continued, remote, "the child has a span id of its own");
        });
    }
}
