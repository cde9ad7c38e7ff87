//! Where each step's events wait for their router: the scheduler's dispatcher thread, or — for
//! the sequences a server's event loop admitted while attached — that loop itself.
//!
//! Why a loop takes its own: over gRPC every token used to cross two Python threads, the
//! dispatcher (woken by a condition variable, taking the GIL, handing the event over with
//! `call_soon_threadsafe`) and then the loop, on a box whose two cores are both computing the
//! next token. Routed to the loop, the stepping thread writes one byte to a pipe the loop watches,
//! and the loop takes the events and hands them to its streams directly: one thread and one
//! wake-up per step fewer.
//!
//! A sequence's router is fixed when it is admitted, so its events arrive in order whoever routes
//! the others; when the loop detaches, what it had not taken yet joins the thread's queue behind
//! what was there (older events of other sequences), and the rest of those sequences follows.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use smolrt_core::engine::{Event, SeqId};

use crate::stepper::lock;

/// The write end of the pipe an attached loop watches.
#[cfg(unix)]
pub type LoopPipe = std::fs::File;
#[cfg(not(unix))]
pub type LoopPipe = std::convert::Infallible;

struct Attached {
    /// Shared so the byte is written after the lock is let go: written under it, the woken
    /// loop thread blocked on the lock at once (a profile saw `take_events` take 277 µs).
    pipe: Arc<LoopPipe>,
    /// The sequences whose events go to the loop, until their final event.
    sequences: HashSet<SeqId>,
    events: VecDeque<Event>,
    /// A byte was written that the loop has not answered with `take` yet: one is enough.
    signalled: bool,
}

impl Attached {
    /// The pipe to write a byte to (once the lock is let go), if the loop needs waking.
    fn signal(&mut self) -> Option<Arc<LoopPipe>> {
        if self.signalled || self.events.is_empty() {
            return None;
        }
        self.signalled = true;
        Some(Arc::clone(&self.pipe))
    }
}

fn wake_loop(pipe: Option<Arc<LoopPipe>>) {
    #[cfg(unix)]
    if let Some(pipe) = pipe {
        use std::io::Write;
        // A full pipe (WouldBlock) already holds the loop's wake-up; the read end is the loop's
        // to close, and once it has, nobody is listening.
        let _ = (&*pipe).write(&[1]);
    }
    #[cfg(not(unix))]
    drop(pipe);
}

#[derive(Default)]
struct State {
    /// The dispatcher thread's events, oldest first.
    events: VecDeque<Event>,
    /// No more events will come (closed).
    ended: bool,
    attached: Option<Attached>,
}

#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
    ready: Condvar,
}

/// An attach while another loop is attached.
#[derive(Debug)]
pub struct AlreadyAttached;

impl Outbox {
    /// Queue one step's events (and, when `ended`, the end of the stream) and wake their routers.
    pub fn push(&self, events: impl IntoIterator<Item = Event>, ended: bool) {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let before = state.events.len();
        for event in events {
            match state.attached.as_mut() {
                Some(a) if a.sequences.contains(&event.seq) => {
                    if event.is_final() {
                        a.sequences.remove(&event.seq);
                    }
                    a.events.push_back(event);
                }
                _ => state.events.push_back(event),
            }
        }
        state.ended |= ended;
        let pipe = state.attached.as_mut().and_then(Attached::signal);
        let wake_thread = state.ended || state.events.len() > before;
        drop(guard);
        wake_loop(pipe);
        if wake_thread {
            self.ready.notify_all();
        }
    }

    /// For the dispatcher thread: its queued events, oldest first, waiting for some while there
    /// are none; None once the stream has ended and every one was taken.
    pub fn next_blocking(&self) -> Option<Vec<Event>> {
        let mut state = lock(&self.state);
        while !state.ended && state.events.is_empty() {
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.events.is_empty() {
            return None;
        }
        Some(state.events.drain(..).collect())
    }

    /// Route the sequences [`route_to_loop`](Self::route_to_loop) names to a loop: the stepping
    /// thread writes a byte to `pipe` when their events wait, and the loop takes them with
    /// [`take`](Self::take).
    pub fn attach(&self, pipe: LoopPipe) -> Result<(), AlreadyAttached> {
        let mut state = lock(&self.state);
        if state.attached.is_some() {
            return Err(AlreadyAttached);
        }
        state.attached = Some(Attached {
            pipe: Arc::new(pipe),
            sequences: HashSet::new(),
            events: VecDeque::new(),
            signalled: false,
        });
        Ok(())
    }

    /// Send `seq`'s events to the attached loop (no-op with none). Call it before `seq` can
    /// produce an event: before its admission is queued for the stepping thread.
    pub fn route_to_loop(&self, seq: SeqId) {
        if let Some(a) = lock(&self.state).attached.as_mut() {
            a.sequences.insert(seq);
        }
    }

    /// For the attached loop, after the pipe woke it: its queued events, oldest first (empty
    /// when there are none, or no loop is attached).
    pub fn take(&self) -> Vec<Event> {
        let mut state = lock(&self.state);
        let Some(a) = state.attached.as_mut() else {
            return Vec::new();
        };
        a.signalled = false;
        a.events.drain(..).collect()
    }

    /// Hand the loop's sequences back to the dispatcher thread (call it on the loop, or once the
    /// loop has stopped, so none of its batches is half-routed). Returns the events the caller
    /// must route itself: those not taken yet when the stream has ended, since the thread
    /// stops then.
    pub fn detach(&self) -> Vec<Event> {
        let mut state = lock(&self.state);
        let Some(a) = state.attached.take() else {
            return Vec::new();
        };
        if state.ended {
            return a.events.into();
        }
        state.events.extend(a.events);
        drop(state);
        self.ready.notify_all();
        Vec::new()
    }
}
