//! What a change said, shown once on the page it leads back to: a form's
//! answer is a redirect (so reloading the page never sends the form again)
//! with the outcome in a short-lived cookie, which the next page shows and
//! clears. The cookie is set only here, HttpOnly and SameSite=Strict, so
//! no other site can put words on a page.

use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Redirect, Response};

const COOKIE: &str = "__Host-tierwise_flash";
/// Longer outcomes are cut (a cookie holds about 4 KB; hex doubles it).
const MAX_TEXT: usize = 1500;

/// An outcome to show: done, or refused and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

impl Flash {
    pub fn done(text: impl Into<String>) -> Self {
        Self {
            ok: true,
            text: text.into(),
        }
    }

    pub fn refused(text: impl Into<String>) -> Self {
        Self {
            ok: false,
            text: text.into(),
        }
    }

    fn encode(&self) -> String {
        let mut text = self.text.as_str();
        if text.len() > MAX_TEXT {
            let mut end = MAX_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text = &text[..end];
        }
        format!(
            "{}{}",
            if self.ok { 'd' } else { 'r' },
            tierwise_common::hex(text.as_bytes())
        )
    }

    fn decode(value: &str) -> Option<Self> {
        let ok = match value.get(..1)? {
            "d" => true,
            "r" => false,
            _ => return None,
        };
        let hex = &value[1..];
        if hex.len() > 2 * MAX_TEXT {
            return None;
        }
        Some(Self {
            ok,
            text: String::from_utf8(super::session::unhex(hex)?).ok()?,
        })
    }
}

/// The outcome the request's cookie carries, if any.
pub fn read(headers: &HeaderMap) -> Option<Flash> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| Flash::decode(value))
}

/// Back to `to` (303: the browser asks with GET), showing `flash` there.
pub fn redirect(to: &str, flash: &Flash) -> Response {
    let mut response = Redirect::to(to).into_response();
    let cookie = format!(
        "{COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=60",
        flash.encode()
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Clears the outcome once a whole page (not htmx's live part) has shown
/// it.
pub async fn forget(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let shown = request.method() == Method::GET
        && !request.headers().contains_key("hx-request")
        && read(request.headers()).is_some();
    let mut response = next.run(request).await;
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if shown && html && response.status().is_success() {
        response.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_static(
                "__Host-tierwise_flash=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
            ),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_survives_its_cookie_and_nothing_else_reads_as_one() {
        for flash in [
            Flash::done("Approved rollout r1; it is now running."),
            Flash::refused("rollout r1 is running; approve needs it to be waiting_for_approval"),
            Flash::done("ünïcode — and \"quotes\"; semicolons"),
        ] {
            let value = flash.encode();
            assert!(value.bytes().all(|b| b.is_ascii_alphanumeric()), "{value}");
            let mut headers = HeaderMap::new();
            headers.insert(
                header::COOKIE,
                format!("a=1; {COOKIE}={value}").parse().expect("header"),
            );
            assert_eq!(read(&headers), Some(flash));
        }
        let long = Flash::refused("é".repeat(MAX_TEXT));
        let read_back = Flash::decode(&long.encode()).expect("decodes");
        assert!(read_back.text.len() <= MAX_TEXT && read_back.text.starts_with("éé"));
        for bad in ["", "x41", "d4", "dzz", "d<script>"] {
            assert_eq!(Flash::decode(bad), None, "{bad}");
        }
    }
}
