//! CloudWatch metrics as Embedded Metric Format (EMF) lines on stdout: Lambda ships stdout to
//! CloudWatch Logs, which turns each line's `_aws` block into metrics with no API call and no
//! agent (what Powertools' `Metrics` does for Python).
//!
//! One line per answered query (`QueryLatency`, `EmbedLatency`, `SearchLatency`, `ScanRows`,
//! `BatchSize`, by `FunctionName` and `QueryKind`) and one per error (`Errors`, by
//! `FunctionName` and `ErrorType`, a bounded set). Request id and function version ride along as
//! properties, searchable in Logs Insights but not dimensions (they would explode cardinality).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// What one answered query measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueryMetrics {
    /// Whole invocation, parsing to response, in milliseconds.
    pub latency_ms: f64,
    /// The Bedrock call, for text and image queries.
    pub embed_ms: Option<f64>,
    /// Queueing plus the scan.
    pub search_ms: f64,
    /// Catalog rows the query's pass read for it.
    pub scan_rows: usize,
    /// Queries answered by the same pass.
    pub batch_size: usize,
}

/// Writes EMF lines for one function.
#[derive(Clone, Debug)]
pub struct Emf {
    namespace: String,
    function_name: String,
    function_version: String,
}

impl Emf {
    /// Metrics under `namespace` for the function `name`, version `version`.
    pub fn new(namespace: &str, name: &str, version: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            function_name: name.to_owned(),
            function_version: version.to_owned(),
        }
    }

    /// The line for an answered query.
    pub fn query_line(&self, request_id: &str, kind: &str, m: &QueryMetrics) -> Value {
        let mut metrics = vec![
            ("QueryLatency", "Milliseconds", json!(round(m.latency_ms))),
            ("SearchLatency", "Milliseconds", json!(round(m.search_ms))),
            ("ScanRows", "Count", json!(m.scan_rows)),
            ("BatchSize", "Count", json!(m.batch_size)),
        ];
        if let Some(e) = m.embed_ms {
            metrics.push(("EmbedLatency", "Milliseconds", json!(round(e))));
        }
        self.line(request_id, ("QueryKind", kind), &metrics)
    }

    /// The line for an error answered to the caller (4xx) or reported as a function error.
    pub fn error_line(&self, request_id: &str, error_type: &str, status: u16) -> Value {
        let mut line = self.line(
            request_id,
            ("ErrorType", error_type),
            &[("Errors", "Count", json!(1))],
        );
        if let Some(map) = line.as_object_mut() {
            map.insert("statusCode".into(), json!(status));
        }
        line
    }

    /// Prints `line` as one write, so concurrent invocations never interleave their lines.
    pub fn emit(&self, line: &Value) {
        let mut text = line.to_string();
        text.push('\n');
        let mut out = std::io::stdout().lock();
        // Metrics must never fail a request: a closed stdout loses the line, nothing else.
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    fn line(
        &self,
        request_id: &str,
        dimension: (&str, &str),
        metrics: &[(&str, &str, Value)],
    ) -> Value {
        let definitions: Vec<Value> = metrics
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
            .collect();
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [["FunctionName", dimension.0]],
                    "Metrics": definitions,
                }],
            }),
        );
        root.insert("FunctionName".into(), json!(self.function_name));
        root.insert(dimension.0.into(), json!(dimension.1));
        for (name, _, value) in metrics {
            root.insert((*name).into(), value.clone());
        }
        root.insert("requestId".into(), json!(request_id));
        root.insert("functionVersion".into(), json!(self.function_version));
        Value::Object(root)
    }
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_lines_declare_every_metric_they_carry() {
        let emf = Emf::new("LmiSimilarity", "similar", "3");
        let line = emf.query_line(
            "req-1",
            "text",
            &QueryMetrics {
                latency_ms: 12.3456,
                embed_ms: Some(8.0),
                search_ms: 4.0,
                scan_rows: 1000,
                batch_size: 3,
            },
        );
        let def = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(def["Namespace"], "LmiSimilarity");
        assert_eq!(def["Dimensions"], json!([["FunctionName", "QueryKind"]]));
        let names: Vec<&str> = def["Metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .map(|m| m["Name"].as_str().expect("name"))
            .collect();
        for name in &names {
            assert!(line.get(*name).is_some(), "{name} declared but absent");
        }
        assert_eq!(names.len(), 5);
        assert_eq!(line["QueryLatency"], 12.346);
        assert_eq!(line["ScanRows"], 1000);
        assert_eq!(line["BatchSize"], 3);
        assert_eq!(line["QueryKind"], "text");
        assert_eq!(line["FunctionName"], "similar");
        assert_eq!(line["requestId"], "req-1");
        assert_eq!(line["functionVersion"], "3");
        assert!(line["_aws"]["Timestamp"].as_u64().expect("timestamp") > 1_600_000_000_000);
    }

    #[test]
    fn error_lines_count_one_error_by_type() {
        let line = Emf::new("N", "f", "1").error_line("r", "UnknownCategory", 400);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["FunctionName", "ErrorType"]])
        );
        assert_eq!(line["Errors"], 1);
        assert_eq!(line["ErrorType"], "UnknownCategory");
        assert_eq!(line["statusCode"], 400);
    }
}
