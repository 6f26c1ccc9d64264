//! Fan-out of one backend's events to every connection on it.
//!
//! Each event is encoded once and offered to every subscriber's bounded queue. A
//! subscriber whose queue is full is dropped and told to close: it is too slow, and
//! waiting for it would delay everyone else. Nothing is ever dropped silently.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::phone::EventReceiver;
use crate::protocol::api::encode_event;

struct Subscriber {
    queue: mpsc::Sender<Utf8Bytes>,
    overflow: Arc<Notify>,
}

/// One backend's subscribers.
pub struct Hub {
    subscribers: Mutex<Vec<Subscriber>>,
    queue_len: usize,
}

/// A connection's end of a subscription.
pub struct Subscription {
    /// The notifications, already encoded, in order.
    pub queue: mpsc::Receiver<Utf8Bytes>,
    /// Signalled when the queue overflowed and the subscription was dropped.
    pub overflow: Arc<Notify>,
}

impl Hub {
    /// Starts fanning out `events`; each subscriber's queue holds `queue_len` messages.
    pub fn spawn(events: EventReceiver, queue_len: usize) -> Arc<Hub> {
        let hub = Arc::new(Hub {
            subscribers: Mutex::new(Vec::new()),
            queue_len: queue_len.max(1),
        });
        tokio::spawn(dispatch(Arc::clone(&hub), events));
        hub
    }

    /// Adds a subscriber that receives every event from now on.
    pub fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::channel(self.queue_len);
        let overflow = Arc::new(Notify::new());
        self.lock().push(Subscriber {
            queue: tx,
            overflow: Arc::clone(&overflow),
        });
        Subscription {
            queue: rx,
            overflow,
        }
    }

    /// How many connections are subscribed.
    pub fn subscriber_count(&self) -> usize {
        let mut subs = self.lock();
        subs.retain(|s| !s.queue.is_closed());
        subs.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, message: &Utf8Bytes) {
        self.lock()
            .retain(|s| match s.queue.try_send(message.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    s.overflow.notify_one();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }
}

async fn dispatch(hub: Arc<Hub>, mut events: EventReceiver) {
    while let Some(event) = events.recv().await {
        let message = Utf8Bytes::from(encode_event(&event));
        hub.publish(&message);
    }
}
