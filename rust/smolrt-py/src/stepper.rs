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
//! Admissions, cancels and session drops are queued and applied between steps, so none waits
//! for a step: `add` checks a request against the engine's [`Admission`] and the live sequences
//! this keeps count of, and answers a bad one at once. (It used to take the engine's lock, and
//! waited for the step that ran: 334 ms behind a 512-token prefill chunk, measured on a
//! server's event loop, which served nothing else meanwhile.) `close` cancels every sequence,
//! queues their final events and ends the event stream. The events wait in the `outbox` for
//! whichever router takes them.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use smolrt_core::engine::{
    Admission, Engine, Event, EventKind, GenerationRequest, SeqId, SessionKey, Usage,
};
use smolrt_core::{Error, ErrorCode, Result};

use crate::gateway::panic_message;
use crate::outbox::Outbox;
use crate::readings::Readings;

/// What the stepping thread is asked to do besides stepping.
#[derive(Default)]
struct Control {
    /// Requests admitted since the last step, to add to the engine before the next one.
    admissions: Vec<(SeqId, GenerationRequest)>,
    /// Sequences to stop before the next step (after the admissions: a cancel can only follow
    /// its sequence's admission).
    cancels: Vec<SeqId>,
    /// Sessions whose resident KV to free before the next step (before the admissions: one
    /// queued with a drop may have been admitted before it, and then finds nothing to reuse,
    /// as it would have after the drop).
    drops: Vec<SessionKey>,
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
    /// The limits admission checks without the engine, and the sequence ids.
    admission: Admission,
    /// Every sequence admitted and not yet ended (queued or in the engine), with its session:
    /// what admission counts against the limit on sequences and checks a session against.
    live: Mutex<HashMap<SeqId, Option<SessionKey>>>,
    /// Each step's events, until the dispatcher thread or an attached loop takes them.
    pub outbox: Outbox,
    /// What can be read without the engine's lock, refreshed whenever it is let go.
    pub readings: Readings,
}

/// The engine's lock, held: whatever changed meanwhile reaches the readings when it is let go.
pub struct EngineGuard<'a> {
    engine: MutexGuard<'a, Engine>,
    readings: &'a Readings,
}

impl Deref for EngineGuard<'_> {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

impl DerefMut for EngineGuard<'_> {
    fn deref_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }
}

impl Drop for EngineGuard<'_> {
    fn drop(&mut self) {
        self.readings.refresh(&self.engine);
    }
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
            admission: engine.admission(),
            readings: Readings::of(&engine),
            engine: Mutex::new(engine),
            waiting: AtomicUsize::new(0),
            control: Mutex::new(Control::default()),
            wake: Condvar::new(),
            live: Mutex::new(HashMap::new()),
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
    pub fn engine(&self) -> EngineGuard<'_> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let engine = lock(&self.engine);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        EngineGuard {
            engine,
            readings: &self.readings,
        }
    }

    /// The engine, for the stepping thread: after whoever waits for it.
    fn engine_last(&self) -> EngineGuard<'_> {
        while self.waiting.load(Ordering::SeqCst) > 0 {
            std::thread::yield_now();
        }
        EngineGuard {
            engine: lock(&self.engine),
            readings: &self.readings,
        }
    }

    /// Admit a generation without waiting for the step that runs: checked now (every error
    /// `Engine::add` would give), added to the engine before the next step. Returns its id;
    /// `route` runs with it before the sequence can produce an event (to pick its router).
    pub fn add(&self, request: GenerationRequest, route: impl FnOnce(SeqId)) -> Result<SeqId> {
        self.admission.check(&request)?;
        let seq = {
            let mut live = lock(&self.live);
            self.admission
                .check_room(live.len(), request.session, |key| {
                    live.values().any(|s| *s == Some(key))
                })?;
            let seq = self.admission.next_id();
            live.insert(seq, request.session);
            seq
        };
        let mut control = lock(&self.control);
        if control.closing {
            drop(control);
            lock(&self.live).remove(&seq);
            return Err(Error::new(
                ErrorCode::FailedPrecondition,
                "the engine is closed",
            ));
        }
        route(seq);
        control.admissions.push((seq, request));
        drop(control);
        self.wake.notify_one();
        Ok(seq)
    }

    /// Sequences admitted and not yet ended: queued for the next step, prefilling or decoding.
    pub fn active_sequences(&self) -> usize {
        lock(&self.live).len()
    }

    /// Stop `seq` before the next step; its final event comes through the outbox (nothing, if it
    /// has already finished).
    pub fn cancel(&self, seq: SeqId) {
        lock(&self.control).cancels.push(seq);
        self.wake.notify_one();
    }

    /// Free a session's resident KV before the next step, without waiting for the one that
    /// runs; returns whether it had any. The readings (`resident_tokens`, `cached_prefix`)
    /// show it gone at once. (It took the engine's lock, and a server deleting a session on
    /// its event loop stood still for the step that ran.)
    pub fn drop_session(&self, key: SessionKey) -> bool {
        let mut control = lock(&self.control);
        let had = self.readings.residents.forget(key);
        control.drops.push(key);
        drop(control);
        self.wake.notify_one();
        had
    }

    /// Cancel every sequence and end the event stream once their final events are queued.
    pub fn close(&self) {
        lock(&self.control).closing = true;
        self.wake.notify_one();
    }

    fn run(&self) {
        loop {
            let Control {
                admissions,
                cancels,
                drops,
                closing,
            } = self.wait_for_work();
            let events = {
                let mut engine = self.engine_last();
                for key in drops {
                    engine.drop_session(key);
                }
                // Checked when they were queued; a failure now (none is known) still ends its
                // stream with the error.
                let mut events: Vec<Event> = admissions
                    .into_iter()
                    .filter_map(|(id, request)| {
                        engine
                            .add_with_id(id, request)
                            .err()
                            .map(|e| failed(id, &e))
                    })
                    .collect();
                events.extend(cancels.into_iter().filter_map(|id| engine.cancel(id)));
                if closing {
                    events.extend(engine.cancel_all());
                } else if engine.has_work() {
                    events.extend(step_or_fail(&mut engine));
                }
                events
            };
            self.forget_ended(&events);
            self.outbox.push(events, closing);
            if closing {
                return;
            }
        }
    }

    /// The sequences whose final event is among `events` are no longer live.
    fn forget_ended(&self, events: &[Event]) {
        let mut live = lock(&self.live);
        for event in events.iter().filter(|e| e.is_final()) {
            live.remove(&event.seq);
        }
    }

    /// Blocks until there is something to do; returns the admissions and cancels to apply and
    /// whether to close (leaving `closing` set, so later admissions are refused).
    fn wait_for_work(&self) -> Control {
        let mut control = lock(&self.control);
        loop {
            if control.closing
                || !control.cancels.is_empty()
                || !control.admissions.is_empty()
                || !control.drops.is_empty()
            {
                break;
            }
            if self.engine_last().has_work() {
                break;
            }
            // The wait releases the control lock atomically, and `add` takes it: an admission
            // after the check above still wakes the thread.
            control = self
                .wake
                .wait(control)
                .unwrap_or_else(PoisonError::into_inner);
        }
        Control {
            admissions: std::mem::take(&mut control.admissions),
            cancels: std::mem::take(&mut control.cancels),
            drops: std::mem::take(&mut control.drops),
            closing: control.closing,
        }
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
            .map(|seq| failed(seq, &error)),
    );
    events
}

/// The final event of a sequence that ended with `error` before it produced anything.
fn failed(seq: SeqId, error: &Error) -> Event {
    Event {
        seq,
        kind: EventKind::Failed {
            code: error.code,
            message: error.message.clone(),
            usage: Usage::default(),
        },
    }
}
