//! Delivers the report to sixboot: one POST with the boot's bearer token, retried while
//! sixboot may be restarting (connection refused, 5xx, and 404 before its routes are up),
//! never past a deadline. Any other 4xx is final: sixboot's body names the field it refused,
//! and the same report would be refused again.

use crate::console::{note, say};
use sixboot_report::Accepted;
use std::time::{Duration, Instant};

/// How long one attempt may take, connect to last byte.
const ATTEMPT: Duration = Duration::from_secs(20);
/// The most of sixboot's answer read.
const MAX_ANSWER: u64 = 64 << 10;

/// How the delivery ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A 2xx with sixboot's answer.
    Accepted(Accepted),
    /// A 2xx whose body is not an answer sixboot gives.
    Unclear(String),
    /// A final refusal: the status and sixboot's body.
    Refused(u16, String),
    /// No final answer before the deadline; the last error.
    GaveUp(String),
}

/// Whether a status is worth asking again: sixboot is starting, restarting or overloaded.
pub fn retryable(status: u16) -> bool {
    status == 404 || status >= 500
}

/// POSTs `body` to `url` until a final answer or `retry_for` passes, `every` apart.
pub fn post(
    url: &str,
    token: Option<&str>,
    body: &[u8],
    retry_for: Duration,
    every: Duration,
) -> Outcome {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(ATTEMPT))
        .build()
        .new_agent();
    let deadline = Instant::now() + retry_for;
    loop {
        let mut req = agent.post(url).content_type("application/json");
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let last = match req.send(body) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let text = resp
                    .body_mut()
                    .with_config()
                    .limit(MAX_ANSWER)
                    .read_to_string()
                    .unwrap_or_default();
                if (200..300).contains(&status) {
                    say(&format!("report accepted (HTTP {status})"));
                    return match serde_json::from_str::<Accepted>(&text) {
                        Ok(a) => Outcome::Accepted(a),
                        Err(e) => Outcome::Unclear(format!("{e}: {}", text.trim())),
                    };
                }
                if !retryable(status) {
                    return Outcome::Refused(status, text.trim().to_string());
                }
                format!("HTTP {status} {}", text.trim())
                    .trim_end()
                    .to_string()
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() + every > deadline {
            return Outcome::GaveUp(last);
        }
        note(&format!(
            "report not delivered ({last}); again in {} s",
            every.as_secs()
        ));
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixboot_report::Then;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A one-thread HTTP server answering each request with the next of `answers`;
    /// returns its URL and the requests it read.
    fn server(answers: Vec<&'static str>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/api/v1/machines/52:54:00:b0:00:01/report",
            l.local_addr().unwrap()
        );
        let t = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for answer in answers {
                let (mut s, _) = l.accept().unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                // Head and the short body arrive within the timeout; stop at the body's end.
                while let Ok(n) = s.read(&mut buf) {
                    req.extend_from_slice(&buf[..n]);
                    if n == 0 || req.ends_with(b"}") {
                        break;
                    }
                }
                seen.push(String::from_utf8_lossy(&req).into_owned());
                s.write_all(answer.as_bytes()).unwrap();
            }
            seen
        });
        (url, t)
    }

    fn http(status: &str, body: &str) -> &'static str {
        format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .leak()
    }

    #[test]
    fn retries_a_503_then_takes_the_answer() {
        let (url, t) = server(vec![
            http("503 Service Unavailable", ""),
            http(
                "200 OK",
                r#"{"stored":true,"result":"PASS","then":"poweroff"}"#,
            ),
        ]);
        let got = post(
            &url,
            Some("t0k"),
            b"{}",
            Duration::from_secs(30),
            Duration::from_millis(10),
        );
        assert_eq!(
            got,
            Outcome::Accepted(Accepted {
                stored: true,
                result: "PASS".into(),
                then: Then::Poweroff
            })
        );
        let seen = t.join().unwrap();
        assert_eq!(seen.len(), 2);
        for r in &seen {
            assert!(
                r.starts_with("POST /api/v1/machines/52:54:00:b0:00:01/report HTTP/1.1\r\n"),
                "{r}"
            );
            let lower = r.to_ascii_lowercase();
            assert!(lower.contains("\r\nauthorization: bearer t0k\r\n"), "{r}");
            assert!(
                lower.contains("\r\ncontent-type: application/json\r\n"),
                "{r}"
            );
            assert!(r.ends_with("\r\n\r\n{}"), "{r}");
        }
    }

    #[test]
    fn a_400_is_final_with_its_body() {
        let (url, t) = server(vec![http(
            "400 Bad Request",
            "inventory.disks[0].bytes: invalid type",
        )]);
        let got = post(
            &url,
            None,
            b"{}",
            Duration::from_secs(30),
            Duration::from_millis(10),
        );
        assert_eq!(
            got,
            Outcome::Refused(400, "inventory.disks[0].bytes: invalid type".into())
        );
        t.join().unwrap();
    }

    #[test]
    fn nobody_listening_gives_up_at_the_deadline() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let started = Instant::now();
        let got = post(
            &format!("http://127.0.0.1:{port}/report"),
            None,
            b"{}",
            Duration::from_millis(300),
            Duration::from_millis(100),
        );
        assert!(matches!(got, Outcome::GaveUp(_)), "{got:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn what_is_retried() {
        for s in [404, 500, 502, 503] {
            assert!(retryable(s), "{s}");
        }
        for s in [400, 401, 403, 409, 413, 422] {
            assert!(!retryable(s), "{s}");
        }
    }
}
