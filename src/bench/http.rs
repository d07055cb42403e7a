//! The load tool's HTTP/1.1 client: one kept-alive connection per virtual user and origin,
//! read and written on the virtual user's own task.
//!
//! The load tool runs on the machine it measures, so its own CPU is taken from the server's.
//! reqwest (and hyper's pooled client under it) hands every request to a connection task of
//! its own and back, through a pool, with URL parsing, header maps and timers around it; for
//! the small requests of these scenarios that was most of the tool's CPU. This client writes
//! the request and reads the response on the caller's task, and speaks only what the
//! scenarios need: plain HTTP to an address given as `http://host:port/...`, bodies framed by
//! `Content-Length`, by chunks or by the end of the connection.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request's whole exchange must finish within this.
const TIMEOUT: Duration = Duration::from_secs(30);
/// A response head may not be longer than this.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;

/// A whole response: status, headers (names lower-case) and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The server will close the connection (or the body ran to its end).
    close: bool,
}

impl Response {
    /// The first header called `name` (lower-case).
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.headers_named(name).next()
    }

    /// Every header called `name` (lower-case), in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn text(&self) -> anyhow::Result<&str> {
        std::str::from_utf8(&self.body).context("the response body is not UTF-8")
    }

    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "the response ({}) is not JSON: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Where a URL points: `host:port` and the path with its query.
pub fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let parsed = url::Url::parse(url).with_context(|| format!("not a URL: {url}"))?;
    if parsed.scheme() != "http" {
        bail!("the load tool speaks plain HTTP only, not {url}");
    }
    let host = parsed.host_str().ok_or_else(|| anyhow!("no host in {url}"))?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let mut path = parsed.path().to_owned();
    if let Some(query) = parsed.query() {
        path.push('?');
        path.push_str(query);
    }
    Ok((format!("{host}:{port}"), path))
}

/// A request body and its media type.
pub struct Body<'a> {
    pub content_type: &'a str,
    pub bytes: &'a [u8],
}

/// An `application/x-www-form-urlencoded` body.
fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    serializer.extend_pairs(pairs);
    serializer.finish().into_bytes()
}

const FORM: &str = "application/x-www-form-urlencoded";

/// One virtual user's connections, by `host:port`.
#[derive(Default)]
pub struct Client {
    connections: HashMap<String, Connection>,
}

struct Connection {
    stream: TcpStream,
    /// Bytes read past the previous response.
    buffer: Vec<u8>,
}

impl Client {
    /// Posts `pairs` as a form to `url` with `headers` ([`Client::send`]).
    pub async fn post_form(
        &mut self,
        url: &str,
        headers: &[(&str, &str)],
        pairs: &[(&str, &str)],
    ) -> anyhow::Result<Response> {
        let bytes = form(pairs);
        let body = Body {
            content_type: FORM,
            bytes: &bytes,
        };
        self.send("POST", url, headers, Some(body)).await
    }

    /// Sends a request to `url` (`http://host:port/path?query`) with `headers`, and reads the
    /// whole response.
    pub async fn send(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Body<'_>>,
    ) -> anyhow::Result<Response> {
        let (authority, path) = split_url(url)?;
        let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {authority}\r\n");
        for (name, value) in headers {
            request.push_str(name);
            request.push_str(": ");
            request.push_str(value);
            request.push_str("\r\n");
        }
        let mut request = request.into_bytes();
        if let Some(body) = &body {
            request.extend_from_slice(
                format!(
                    "content-type: {}\r\ncontent-length: {}\r\n\r\n",
                    body.content_type,
                    body.bytes.len()
                )
                .as_bytes(),
            );
            request.extend_from_slice(body.bytes);
        } else {
            request.extend_from_slice(b"\r\n");
        }
        tokio::time::timeout(TIMEOUT, self.exchange(&authority, method, &request))
            .await
            .map_err(|_| anyhow!("{method} {url}: no answer within {TIMEOUT:?}"))?
            .with_context(|| format!("{method} {url}"))
    }

    async fn exchange(&mut self, authority: &str, method: &str, request: &[u8]) -> anyhow::Result<Response> {
        // A kept connection the server has closed meanwhile (an idle timeout) fails before
        // any answer: that request is sent again on a new connection, once.
        if let Some(mut connection) = self.connections.remove(authority) {
            match connection.round_trip(method, request).await {
                Ok(response) => return Ok(self.keep(authority, connection, response)),
                Err(Failure::Unanswered(_)) => {}
                Err(Failure::Broken(error)) => return Err(error),
            }
        }
        let stream = TcpStream::connect(authority)
            .await
            .with_context(|| format!("connecting to {authority}"))?;
        stream.set_nodelay(true)?;
        let mut connection = Connection {
            stream,
            buffer: Vec::with_capacity(8 * 1024),
        };
        match connection.round_trip(method, request).await {
            Ok(response) => Ok(self.keep(authority, connection, response)),
            Err(Failure::Unanswered(error) | Failure::Broken(error)) => Err(error),
        }
    }

    fn keep(&mut self, authority: &str, connection: Connection, response: Response) -> Response {
        if !response.close {
            self.connections.insert(authority.to_owned(), connection);
        }
        response
    }
}

enum Failure {
    /// Nothing of an answer arrived: the request may be sent again on a new connection.
    Unanswered(anyhow::Error),
    Broken(anyhow::Error),
}

impl Connection {
    async fn round_trip(&mut self, method: &str, request: &[u8]) -> Result<Response, Failure> {
        if let Err(error) = self.stream.write_all(request).await {
            return Err(Failure::Unanswered(error.into()));
        }
        if self.buffer.is_empty() {
            match self.stream.read_buf(&mut self.buffer).await {
                Ok(0) => return Err(Failure::Unanswered(anyhow!("the server closed the connection"))),
                Ok(_) => {}
                Err(error) => return Err(Failure::Unanswered(error.into())),
            }
        }
        read_response(&mut self.stream, &mut self.buffer, method == "HEAD")
            .await
            .map_err(Failure::Broken)
    }
}

/// Reads one response from `stream`, starting with the bytes already in `buffer`; leaves in
/// `buffer` what was read past its end.
async fn read_response<R: AsyncRead + Unpin>(
    stream: &mut R,
    buffer: &mut Vec<u8>,
    head_only: bool,
) -> anyhow::Result<Response> {
    let (status, headers, head_len, version) = loop {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut slots);
        match parsed.parse(buffer).context("malformed response head")? {
            httparse::Status::Complete(len) => {
                let headers = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect::<Vec<_>>();
                break (
                    parsed.code.unwrap_or_default(),
                    headers,
                    len,
                    parsed.version.unwrap_or(1),
                );
            }
            httparse::Status::Partial => {
                if buffer.len() > MAX_HEAD {
                    bail!("the response head is longer than {MAX_HEAD} bytes");
                }
                fill(stream, buffer).await?;
            }
        }
    };
    buffer.drain(..head_len);
    let named = |name: &'static str| {
        headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    let mut close = version == 0 || named("connection").any(|v| v.split(',').any(|t| t.trim() == "close"));
    let body = if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if named("transfer-encoding").any(|v| v.ends_with("chunked")) {
        read_chunked(stream, buffer).await?
    } else if let Some(length) = named("content-length").next() {
        let length: usize = length
            .parse()
            .with_context(|| format!("bad content-length {length:?}"))?;
        while buffer.len() < length {
            fill(stream, buffer).await?;
        }
        buffer.drain(..length).collect()
    } else {
        // Framed by the end of the connection.
        close = true;
        loop {
            if stream.read_buf(buffer).await? == 0 {
                break std::mem::take(buffer);
            }
        }
    };
    Ok(Response {
        status,
        headers,
        body,
        close,
    })
}

/// Reads more into `buffer`; the end of the stream is an error (a response was cut short).
async fn fill<R: AsyncRead + Unpin>(stream: &mut R, buffer: &mut Vec<u8>) -> anyhow::Result<()> {
    if buffer.capacity() - buffer.len() < 4096 {
        buffer.reserve(8 * 1024);
    }
    if stream.read_buf(buffer).await? == 0 {
        bail!("the connection closed in the middle of a response");
    }
    Ok(())
}

/// Decodes a chunked body (RFC 9112 section 7.1); trailers are read and dropped.
async fn read_chunked<R: AsyncRead + Unpin>(stream: &mut R, buffer: &mut Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(stream, buffer).await?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).with_context(|| format!("bad chunk size {size:?}"))?;
        if size == 0 {
            // Trailer fields, up to an empty line.
            while !read_line(stream, buffer).await?.is_empty() {}
            return Ok(body);
        }
        while buffer.len() < size + 2 {
            fill(stream, buffer).await?;
        }
        if &buffer[size..size + 2] != b"\r\n" {
            bail!("a chunk does not end with CRLF");
        }
        body.extend_from_slice(&buffer[..size]);
        buffer.drain(..size + 2);
    }
}

/// Reads one CRLF-terminated line (without the CRLF) off the front of `buffer`.
async fn read_line<R: AsyncRead + Unpin>(stream: &mut R, buffer: &mut Vec<u8>) -> anyhow::Result<String> {
    loop {
        if let Some(end) = buffer.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buffer[..end]).into_owned();
            buffer.drain(..end + 2);
            return Ok(line);
        }
        if buffer.len() > MAX_HEAD {
            bail!("a chunk line is longer than {MAX_HEAD} bytes");
        }
        fill(stream, buffer).await?;
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::ReadBuf;

    use super::*;

    /// Hands out its bytes a few at a time, as a socket may.
    struct Trickle(Vec<u8>, usize);

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            out: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let n = self.1.min(self.0.len()).min(out.remaining());
            let taken: Vec<u8> = self.0.drain(..n).collect();
            out.put_slice(&taken);
            Poll::Ready(Ok(()))
        }
    }

    async fn read_all(bytes: &[u8], step: usize) -> (Vec<anyhow::Result<Response>>, Vec<u8>) {
        let mut stream = Trickle(bytes.to_vec(), step);
        let mut buffer = Vec::new();
        let mut responses = Vec::new();
        loop {
            let response = read_response(&mut stream, &mut buffer, false).await;
            let stop = response.is_err() || response.as_ref().is_ok_and(|r| r.close);
            responses.push(response);
            if stop || (buffer.is_empty() && stream.0.is_empty()) {
                return (responses, buffer);
            }
        }
    }

    #[tokio::test]
    async fn responses_framed_by_length_follow_each_other_on_one_connection() {
        let bytes = b"HTTP/1.1 302 Found\r\nLocation: /login?x=1\r\nSet-Cookie: a=1; Path=/\r\nset-cookie: b=2\r\nContent-Length: 0\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";
        for step in [1, 7, 4096] {
            let (responses, rest) = read_all(bytes, step).await;
            assert!(rest.is_empty());
            let [first, second] = responses.try_into().map_err(|_| "two responses").unwrap();
            let (first, second) = (first.unwrap(), second.unwrap());
            assert_eq!(first.status, 302);
            assert_eq!(first.header("location"), Some("/login?x=1"));
            assert_eq!(
                first.headers_named("set-cookie").collect::<Vec<_>>(),
                ["a=1; Path=/", "b=2"]
            );
            assert!(first.body.is_empty() && !first.close);
            assert_eq!(second.json().unwrap()["ok"], true);
            assert!(second.is_success() && !second.close);
        }
    }

    #[tokio::test]
    async fn a_chunked_body_is_decoded_with_its_extensions_and_trailers() {
        let bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\nA\r\n, world!!!\r\n0\r\nTrailer: t\r\n\r\n\
HTTP/1.1 204 No Content\r\n\r\n";
        for step in [1, 3, 4096] {
            let (responses, _) = read_all(bytes, step).await;
            assert_eq!(responses.len(), 2);
            let first = responses[0].as_ref().unwrap();
            assert_eq!(first.text().unwrap(), "hello, world!!!");
            assert_eq!(responses[1].as_ref().unwrap().status, 204);
        }
    }

    #[tokio::test]
    async fn a_body_without_framing_runs_to_the_end_of_the_connection() {
        let (responses, _) = read_all(b"HTTP/1.0 200 OK\r\n\r\nall of it", 2).await;
        let response = responses[0].as_ref().unwrap();
        assert_eq!(response.text().unwrap(), "all of it");
        assert!(response.close);
        let (responses, _) = read_all(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
            64,
        )
        .await;
        assert!(responses[0].as_ref().unwrap().close);
    }

    #[tokio::test]
    async fn cut_short_or_malformed_responses_are_errors() {
        for bytes in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"[..],
            b"HTTP/1.1 200 OK\r\nContent-Le",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"SMTP 220 hello\r\n\r\n",
        ] {
            let (responses, _) = read_all(bytes, 4).await;
            assert!(
                responses.last().is_some_and(|r| r.is_err()),
                "accepted {:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    /// Answers one request per connection, with the connection's number, then closes it
    /// without saying so (as an idle timeout does); the `broken`th connection answers half a
    /// response.
    async fn closing_server(broken: usize) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for n in 1.. {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let mut request = Vec::new();
                while !request.ends_with(b"\r\n\r\n") {
                    let mut byte = [0u8; 1];
                    if stream.read_exact(&mut byte).await.is_err() {
                        break;
                    }
                    request.push(byte[0]);
                }
                let answer = if n == broken {
                    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab".to_owned()
                } else {
                    format!("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{n}")
                };
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        format!("http://{address}/")
    }

    #[tokio::test]
    async fn a_request_on_a_connection_the_server_closed_goes_again_on_a_new_one() {
        let url = closing_server(0).await;
        let mut client = Client::default();
        for n in ["1", "2", "3"] {
            let response = client.send("GET", &url, &[], None).await.unwrap();
            assert_eq!(response.text().unwrap(), n);
        }
    }

    #[tokio::test]
    async fn a_request_answered_in_part_is_not_sent_again() {
        let url = closing_server(2).await;
        let mut client = Client::default();
        assert_eq!(
            client.send("GET", &url, &[], None).await.unwrap().text().unwrap(),
            "1"
        );
        let error = client.send("GET", &url, &[], None).await.unwrap_err();
        assert!(format!("{error:#}").contains("closed in the middle"), "{error:#}");
    }

    #[test]
    fn urls_split_into_an_address_and_a_path() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/authorize?a=b%20c").unwrap(),
            ("127.0.0.1:8080".into(), "/authorize?a=b%20c".into())
        );
        assert_eq!(
            split_url("http://localhost").unwrap(),
            ("localhost:80".into(), "/".into())
        );
        assert!(split_url("https://example.com/").is_err());
        assert!(split_url("/relative").is_err());
    }

    #[test]
    fn forms_are_url_encoded() {
        assert_eq!(form(&[("a", "b c"), ("d", "&=")]), b"a=b+c&d=%26%3D");
    }
}
