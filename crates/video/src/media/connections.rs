//! Per-stream limits on concurrent media connections, as Kinesis Video's quotas set them: one
//! PutMedia connection per stream, three GetMedia connections, five GetMediaForFragmentList
//! calls. A connection beyond its limit is refused (`ConnectionLimitExceededException`);
//! a claimed slot is given back when its [`Claim`] is dropped, at the connection's end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The kinds of media connections the quotas count.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Connection {
    PutMedia,
    GetMedia,
    GetMediaForFragmentList,
}

impl Connection {
    fn limit(self) -> usize {
        match self {
            Self::PutMedia => 1,
            Self::GetMedia => 3,
            Self::GetMediaForFragmentList => 5,
        }
    }
}

/// One stream's open media connections, by kind.
#[derive(Default)]
pub(crate) struct Connections {
    put_media: Arc<AtomicUsize>,
    get_media: Arc<AtomicUsize>,
    fragment_lists: Arc<AtomicUsize>,
}

/// A slot held by an open connection.
pub(crate) struct Claim(Arc<AtomicUsize>);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connections {
    /// A slot for one more connection of `kind`; `None` when the stream has its limit's worth.
    pub fn claim(&self, kind: Connection) -> Option<Claim> {
        let open = match kind {
            Connection::PutMedia => &self.put_media,
            Connection::GetMedia => &self.get_media,
            Connection::GetMediaForFragmentList => &self.fragment_lists,
        };
        let limit = kind.limit();
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| (count < limit).then_some(count + 1)).ok()?;
        Some(Claim(Arc::clone(open)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_come_back_when_claims_end() {
        let connections = Connections::default();
        let claims: Vec<Claim> = (0..3).filter_map(|_| connections.claim(Connection::GetMedia)).collect();
        assert_eq!(claims.len(), 3);
        assert!(connections.claim(Connection::GetMedia).is_none());
        let put = connections.claim(Connection::PutMedia);
        assert!(put.is_some() && connections.claim(Connection::PutMedia).is_none());
        drop(claims);
        assert!(connections.claim(Connection::GetMedia).is_some());
    }
}
