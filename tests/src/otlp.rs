//! An OTLP/HTTP metrics receiver for tests: accepts `POST /v1/metrics`,
//! decodes each body with the official `opentelemetry-proto` definitions,
//! keeps the requests, answers 200. Stopped (and its thread joined) when
//! dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
use prost014::Message;

/// A running receiver.
pub struct Receiver {
    pub addr: String,
    received: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let addr = listener.local_addr().expect("addr").to_string();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (received, stop) = (received.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        if let Some(req) = serve(conn) {
                            received.lock().unwrap_or_else(|e| e.into_inner()).push(req);
                        }
                    }
                }
            })
        };
        Receiver {
            addr,
            received,
            stop,
            thread: Some(thread),
        }
    }

    /// The latest value pushed for the sum `name`, summed over its points,
    /// with the resource's `service.name`.
    pub fn latest_sum(&self, name: &str) -> Option<(String, i64)> {
        let received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        received.iter().rev().find_map(|req| {
            req.resource_metrics.iter().find_map(|rm| {
                let service = rm
                    .resource
                    .as_ref()?
                    .attributes
                    .iter()
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                        AnyValue::StringValue(s) => Some(s.clone()),
                        _ => None,
                    })?;
                let metric = rm
                    .scope_metrics
                    .iter()
                    .flat_map(|s| &s.metrics)
                    .find(|m| m.name == name)?;
                let Some(Data::Sum(sum)) = &metric.data else {
                    return None;
                };
                let total = sum
                    .data_points
                    .iter()
                    .map(|p| match p.value {
                        Some(Value::AsInt(v)) => v,
                        Some(Value::AsDouble(v)) => v as i64,
                        None => 0,
                    })
                    .sum();
                Some((service, total))
            })
        })
    }
}

/// Reads one HTTP/1 request; answers it; returns the decoded body of a
/// `POST /v1/metrics`.
fn serve(conn: TcpStream) -> Option<ExportMetricsServiceRequest> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let mut conn = conn;
    let _ = conn.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    );
    if !request_line.starts_with("POST /v1/metrics ") {
        return None;
    }
    ExportMetricsServiceRequest::decode(body.as_slice()).ok()
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
