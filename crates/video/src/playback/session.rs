//! HLS streaming sessions: what a session serves, sealed into the token of its URLs.
//!
//! The token carries the session itself (stream, mode, window, options, expiry), signed with
//! HMAC-SHA256 under a key drawn once per data directory and kept in its metadata: any HLS
//! request can be checked and served from its token alone, without session state to keep or
//! expire, and a session URL outlives a restart of the server until it expires.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::archive::Window;
use super::error::PlaybackError;

/// `PlaybackMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Mode {
    #[serde(rename = "LIVE")]
    Live,
    #[serde(rename = "LIVE_REPLAY")]
    LiveReplay,
    #[serde(rename = "ON_DEMAND")]
    OnDemand,
}

/// `DiscontinuityMode`: where media playlists mark discontinuities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum DiscontinuityMode {
    #[serde(rename = "ALWAYS")]
    Always,
    #[serde(rename = "NEVER")]
    Never,
    #[serde(rename = "ON_DISCONTINUITY")]
    OnDiscontinuity,
}

/// One HLS session, as its token carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Session {
    pub stream: String,
    /// The stream's ARN when the session began: a stream deleted and created again under the
    /// same name is another stream, which the session does not reach.
    pub arn: String,
    pub mode: Mode,
    pub window: Window,
    pub discontinuity: DiscontinuityMode,
    /// `DisplayFragmentTimestamp` ALWAYS: each fragment's time as `EXT-X-PROGRAM-DATE-TIME`.
    pub program_date_time: bool,
    pub max_fragments: usize,
    /// The number of the session's first fragment: media sequence numbers count from it.
    pub origin: u64,
    /// Epoch seconds after which the token is refused.
    pub expires_s: i64,
}

type HmacSha256 = Hmac<Sha256>;

/// Seals sessions into tokens and opens them again.
pub(crate) struct Sealer {
    key: [u8; 32],
}

impl Sealer {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, payload: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(payload.as_bytes());
        mac
    }

    /// The session's token: its JSON and the JSON's MAC, both URL-safe base64, joined by `.`.
    pub fn seal(&self, session: &Session) -> String {
        let json = serde_json::to_vec(session).unwrap_or_default();
        let payload = URL_SAFE_NO_PAD.encode(json);
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The session a token carries, if this server sealed it and it has not expired at `now_s`.
    pub fn open(&self, token: &str, now_s: i64) -> Result<Session, PlaybackError> {
        let refused = || PlaybackError::NotAuthorized("The session token is not valid.".into());
        let (payload, signature) = token.split_once('.').ok_or_else(refused)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| refused())?;
        // verify_slice compares in constant time.
        self.mac(payload).verify_slice(&signature).map_err(|_| refused())?;
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| refused())?;
        let session: Session = serde_json::from_slice(&json).map_err(|_| refused())?;
        if now_s > session.expires_s {
            return Err(PlaybackError::NotAuthorized("The session token has expired.".into()));
        }
        Ok(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playback::testing::live_session as session;

    #[test]
    fn a_sealed_session_opens_until_it_expires() {
        let sealer = Sealer::new(rand::random());
        let token = sealer.seal(&session());
        assert!(token.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte)), "URL-safe");
        assert_eq!(sealer.open(&token, 1_000).unwrap(), session());
        let expired = sealer.open(&token, 1_001).unwrap_err();
        assert_eq!(expired.to_string(), "The session token has expired.");
    }

    #[test]
    fn forged_altered_and_foreign_tokens_are_refused() {
        let sealer = Sealer::new(rand::random());
        let token = sealer.seal(&session());
        let (payload, signature) = token.split_once('.').unwrap();
        let longer = Session { expires_s: i64::MAX, ..session() };
        let altered = format!("{}.{signature}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&longer).unwrap()));
        for token in [altered, format!("{payload}.AAAA"), payload.to_owned(), String::new(), "..".into()] {
            assert!(matches!(sealer.open(&token, 0), Err(PlaybackError::NotAuthorized(_))), "{token}");
        }
        assert!(Sealer::new(rand::random()).open(&sealer.seal(&session()), 0).is_err(), "another server's key");
    }
}
