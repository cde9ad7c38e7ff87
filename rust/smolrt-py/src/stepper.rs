//! The stepping thread: calls the engine's batched `step()` back to back while any sequence runs,
//! and queues each step's events for their router: the Python dispatcher thread, or an attached
//! event loop for the sequences it admitted.
//!
//! Nothing on its path touches the interpreter. When Python drove the steps, every step ended by
//! taking the GIL back to convert its events and call the next one, behind whatever Python
//! thread held it: 42–55 µs between steps with one library stream or one gRPC stream, 330–370
//! µs on average at 16 gRPC streams, and up to a switch interval (5 ms) behind a thread that does
//! not let go. Here the next step starts as soon as the last one's events are queued; the
//! conversion to tuples happens on the router's thread, next to the routing.
//!
//! Cancels are queued and applied between steps, so `cancel` never waits for a step. `close`
//! cancels every sequence, queues their final events and ends the event stream. The events wait
//! in the `outbox` for whichever router takes them.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use smolrt_core::engine::{Engine, Event, EventKind, SeqId, Usage};
use smolrt_core::Error;

use crate::gateway::panic_message;
use crate::outbox::Outbox;

/// What the stepping thread is asked to do besides stepping.
#[derive(Default)]
struct Control {
    /// Sequences to stop before the next step.
    cancels: Vec<SeqId>,
    closing: bool,
}

pub struct Stepper {
    engine: Mutex<Engine>,
    /// Threads waiting for the engine's lock outside the stepping thread (admissions, stats).
    /// A mutex is not fair: the stepping thread, unlocking at a step's end and locking again
    /// for the next within a microsecond, won it back nearly every time, and an admission could
    /// wait for the running sequences to finish (seen: 16 gRPC streams run one at a time, ~430
    /// ms apart, while the event loop that admits them stood still). So it lets them go first.
    waiting: AtomicUsize,
    control: Mutex<Control>,
    wake: Condvar,
    /// Each step's events, until the dispatcher thread or an attached loop takes them.
    pub outbox: Outbox,
}

/// A panic inside a step poisons the engine's mutex; its state is still memory-safe and the
/// sequences involved were failed, so later calls carry on (the same holds for the queues).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Stepper {
    /// Starts the stepping thread for `engine`; it runs until [`close`](Self::close).
    pub fn start(engine: Engine) -> std::io::Result<(Arc<Self>, JoinHandle<()>)> {
        let stepper = Arc::new(Self {
            engine: Mutex::new(engine),
            waiting: AtomicUsize::new(0),
            control: Mutex::new(Control::default()),
            wake: Condvar::new(),
            outbox: Outbox::default(),
        });
        let runner = Arc::clone(&stepper);
        let handle = std::thread::Builder::new()
            .name("smolrt-step".into())
            .spawn(move || runner.run())?;
        Ok((stepper, handle))
    }

    /// The engine, for any thread but the stepping one: it waits at most for the step that
    /// runs, never for the next.
    pub fn engine(&self) -> MutexGuard<'_, Engine> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let engine = lock(&self.engine);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        engine
    }

    /// The engine, for the stepping thread: after whoever waits for it.
    fn engine_last(&self) -> MutexGuard<'_, Engine> {
        while self.waiting.load(Ordering::SeqCst) > 0 {
            std::thread::yield_now();
        }
        lock(&self.engine)
    }

    /// A sequence was added to the engine: make sure the thread steps. Taking the control lock
    /// orders this after the thread's look at the engine, or before it: either it saw the new
    /// sequence, or it is waiting and this wakes it.
    pub fn admitted(&self) {
        drop(lock(&self.control));
        self.wake.notify_one();
    }

    /// Stop `seq` before the next step; its final event comes through the outbox (nothing, if it
    /// has already finished).
    pub fn cancel(&self, seq: SeqId) {
        lock(&self.control).cancels.push(seq);
        self.wake.notify_one();
    }

    /// Cancel every sequence and end the event stream once their final events are queued.
    pub fn close(&self) {
        lock(&self.control).closing = true;
        self.wake.notify_one();
    }

    fn run(&self) {
        loop {
            let (cancels, closing) = self.wait_for_work();
            let events = {
                let mut engine = self.engine_last();
                let mut events: Vec<Event> = cancels
                    .into_iter()
                    .filter_map(|id| engine.cancel(id))
                    .collect();
                if closing {
                    events.extend(engine.cancel_all());
                } else if engine.has_work() {
                    events.extend(step_or_fail(&mut engine));
                }
                events
            };
            self.outbox.push(events, closing);
            if closing {
                return;
            }
        }
    }

    /// Blocks until there is something to do; returns the cancels to apply and whether to close.
    fn wait_for_work(&self) -> (Vec<SeqId>, bool) {
        let mut control = lock(&self.control);
        loop {
            if control.closing || !control.cancels.is_empty() {
                break;
            }
            if self.engine_last().has_work() {
                break;
            }
            // The wait releases the control lock atomically, and `admitted` takes it: an
            // admission after the check above still wakes the thread.
            control = self
                .wake
                .wait(control)
                .unwrap_or_else(PoisonError::into_inner);
        }
        (std::mem::take(&mut control.cancels), control.closing)
    }
}

/// One step; if it fails or panics, every sequence that was running ends with the error instead
/// (a failing step must not stop serving the requests that come after).
fn step_or_fail(engine: &mut Engine) -> Vec<Event> {
    // A panic can leave the step's batch out of the engine's map: their ids are kept to tell
    // their streams too.
    let running = engine.sequence_ids();
    let error = match catch_unwind(AssertUnwindSafe(|| engine.step())) {
        Ok(Ok(events)) => return events,
        Ok(Err(error)) => error,
        Err(panic) => Error::internal(format!("scheduler step failed: {}", panic_message(&panic))),
    };
    let mut events = engine.fail_all(&error);
    let told: Vec<SeqId> = events.iter().map(|e| e.seq).collect();
    events.extend(
        running
            .into_iter()
            .filter(|id| !told.contains(id))
            .map(|seq| Event {
                seq,
                kind: EventKind::Failed {
                    code: error.code,
                    message: error.message.clone(),
                    usage: Usage::default(),
                },
            }),
    );
    events
}
