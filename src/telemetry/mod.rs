//! OpenTelemetry traces: the tracer provider with its bounded batch exporter over OTLP
//! (HTTP/protobuf or gRPC), kept across reloads while `[tracing]` stays the same, and the
//! spans of one request (spans.rs). The exporter runs on the SDK's own thread: a
//! collector that is slow or down costs the request path nothing but a full queue's
//! dropped spans.

pub mod spans;

use crate::config::{OtlpProtocol, TracingSettings};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig as _};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
#[error("cannot start the OTLP exporter: {0}")]
pub struct TelemetryError(String);

/// A snapshot's tracer.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    settings: TracingSettings,
}

impl Telemetry {
    /// The tracer for `settings`: `previous` when its settings are the same, else a new
    /// provider and exporter.
    pub fn new(
        settings: &TracingSettings,
        previous: Option<&Arc<Telemetry>>,
    ) -> Result<Arc<Telemetry>, TelemetryError> {
        if let Some(p) = previous.filter(|p| p.settings == *settings) {
            return Ok(p.clone());
        }
        let exporter = match settings.protocol {
            OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(settings.endpoint.clone())
                .with_timeout(settings.timeout)
                .with_headers(Default::default())
                .build(),
            OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(settings.endpoint.clone())
                .with_timeout(settings.timeout)
                .build(),
        }
        .map_err(|e| TelemetryError(e.to_string()))?;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(settings.max_queue)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        let provider = SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                settings.ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(settings.service_name.clone())
                    .build(),
            )
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("banyan");
        Ok(Arc::new(Telemetry {
            provider,
            tracer,
            settings: settings.clone(),
        }))
    }

    pub fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        // Shutting down exports what is queued, waiting for the collector: not on an
        // async worker.
        let provider = self.provider.clone();
        let _ = std::thread::Builder::new()
            .name("banyan-otlp-shutdown".into())
            .spawn(move || {
                let _ = provider.shutdown();
            });
    }
}
