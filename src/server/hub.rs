//! Fan-out of one backend's events to every connection on it.
//!
//! Each event is encoded once and offered to every subscriber's bounded queue. A
//! subscriber whose queue is full is dropped and told to close: it is too slow, and
//! waiting for it would delay everyone else. Nothing is ever dropped silently.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::sync::{Notify, mpsc};

use crate::phone::{EventSink, PhoneEvent};
use crate::protocol::api::{encode_event, extension_bit};

struct Subscriber {
    queue: mpsc::Sender<Arc<str>>,
    overflow: Arc<Notify>,
    /// The extension notifications this subscriber asked for (`Events.Subscribe`).
    extensions: Arc<AtomicU8>,
}

#[derive(Default)]
struct Subscribers {
    next_id: u64,
    by_id: HashMap<u64, Subscriber>,
}

/// One backend's subscribers.
pub struct Hub {
    subscribers: Mutex<Subscribers>,
    queue_len: usize,
}

/// A connection's end of a subscription; unsubscribes when dropped.
pub struct Subscription {
    /// The notifications, already encoded, in order.
    pub queue: mpsc::Receiver<Arc<str>>,
    /// Signalled when the queue overflowed and the subscription was dropped.
    pub overflow: Arc<Notify>,
    extensions: Arc<AtomicU8>,
    id: u64,
    hub: Weak<Hub>,
}

impl Subscription {
    /// The extension notifications (a mask of `EXTENSION_NOTIFICATIONS` bits) this
    /// subscription receives from now on; none by default.
    pub fn set_extensions(&self, mask: u8) {
        self.extensions.store(mask, Ordering::Relaxed);
    }

    /// The extension notifications this subscription receives.
    pub fn extensions(&self) -> u8 {
        self.extensions.load(Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.lock().by_id.remove(&self.id);
        }
    }
}

impl Hub {
    /// A hub whose subscribers' queues hold `queue_len` messages each.
    pub fn new(queue_len: usize) -> Arc<Hub> {
        Arc::new(Hub {
            subscribers: Mutex::new(Subscribers::default()),
            queue_len: queue_len.max(1),
        })
    }

    /// Adds a subscriber that receives every event from now on.
    pub fn subscribe(self: &Arc<Self>) -> Subscription {
        let (tx, rx) = mpsc::channel(self.queue_len);
        let overflow = Arc::new(Notify::new());
        let extensions = Arc::new(AtomicU8::new(0));
        let mut subs = self.lock();
        subs.next_id += 1;
        let id = subs.next_id;
        subs.by_id.insert(
            id,
            Subscriber {
                queue: tx,
                overflow: Arc::clone(&overflow),
                extensions: Arc::clone(&extensions),
            },
        );
        Subscription {
            queue: rx,
            overflow,
            extensions,
            id,
            hub: Arc::downgrade(self),
        }
    }

    /// How many connections are subscribed.
    pub fn subscriber_count(&self) -> usize {
        self.lock().by_id.len()
    }

    fn lock(&self) -> MutexGuard<'_, Subscribers> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `message` for every subscriber; an extension notification (`bit` not 0)
    /// only for those that asked for it.
    fn publish(&self, message: &Arc<str>, bit: u8) {
        self.lock().by_id.retain(|_, s| {
            if bit != 0 && s.extensions.load(Ordering::Relaxed) & bit == 0 {
                return true;
            }
            match s.queue.try_send(message.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    s.overflow.notify_one();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }
}

impl EventSink for Hub {
    /// Encodes the event once and queues it for every subscriber, without waiting.
    fn emit(&self, event: PhoneEvent) {
        self.publish(
            &Arc::<str>::from(encode_event(&event)),
            extension_bit(&event),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::{PhoneEvent, PhoneState};

    #[tokio::test]
    async fn fan_out_unsubscribe_and_overflow() {
        let hub = Hub::new(2);
        let mut a = hub.subscribe();
        let b = hub.subscribe();
        let c = hub.subscribe();
        assert_eq!(hub.subscriber_count(), 3);
        drop(c);
        assert_eq!(
            hub.subscriber_count(),
            2,
            "dropping a subscription unsubscribes"
        );
        let event = PhoneEvent::StateChanged(PhoneState::Offline);
        for _ in 0..3 {
            hub.emit(event.clone());
            // `a` keeps reading; `b` never does.
            let got = a.queue.try_recv().expect("queued at once");
            assert_eq!(&*got, encode_event(&event));
        }
        // `b`'s queue (2) overflowed on the third event: it was told and removed.
        tokio::time::timeout(std::time::Duration::from_secs(5), b.overflow.notified())
            .await
            .expect("overflow signalled");
        let mut b = b;
        assert_eq!(
            b.queue.try_recv().ok().as_deref(),
            Some(&*encode_event(&event))
        );
        assert_eq!(
            b.queue.try_recv().ok().as_deref(),
            Some(&*encode_event(&event))
        );
        assert!(b.queue.try_recv().is_err(), "closed after what was queued");
        assert_eq!(hub.subscriber_count(), 1);
    }
}
