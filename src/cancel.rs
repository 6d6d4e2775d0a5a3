//! Cancellation as a value. An interrupt is counted on a [`Cancel`] that is handed to whoever
//! must heed it (the scheduler, a tool call), rather than read from a process-wide flag, so a
//! test can cancel a call without sending a signal and two runs in one process do not share
//! their interrupts.
//!
//! The first interrupt asks a run to stop starting nodes and to let running ones finish, and
//! ends the waits that are only waits (backoffs, `sleep`: see [`Cancel::wait`]). The
//! second kills the process group of every command still running and ends every wait at once.
//! Commands register their process group for as long as they run; the count only goes up.

use rustix::process::{Pid, Signal, kill_process_group};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The interrupts of one run, and the process groups a second interrupt kills. Clones share
/// them.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    /// How many interrupts have arrived; stops at `u8::MAX`.
    interrupts: AtomicU8,
    /// The process groups of the commands running now.
    groups: Mutex<Vec<u32>>,
    /// Notified, with `groups` as its lock, when an interrupt arrives.
    killed: Condvar,
}

impl Cancel {
    /// Counts one interrupt and returns how many there have been. From the second on, kills
    /// the process group of every registered command and wakes every [`sleep`](Self::sleep).
    pub fn interrupt(&self) -> u8 {
        let before = self
            .0
            .interrupts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(1))
            })
            .unwrap_or(u8::MAX);
        let count = before.saturating_add(1);
        let groups = self.groups();
        if count >= 2 {
            for &group in groups.iter() {
                kill(group);
            }
        }
        // Every interrupt wakes the waits: the first ends the [`wait`](Self::wait)s, the second
        // the [`sleep`](Self::sleep)s too.
        self.0.killed.notify_all();
        count
    }

    /// How many interrupts have arrived (0, 1, 2 or more).
    pub fn count(&self) -> u8 {
        self.0.interrupts.load(Ordering::SeqCst)
    }

    /// Whether the run should stop starting nodes (one interrupt or more).
    pub fn requested(&self) -> bool {
        self.count() > 0
    }

    /// Whether running work is to be killed (two interrupts or more).
    pub fn killed(&self) -> bool {
        self.count() >= 2
    }

    /// Registers the process group `group` (the id of its leader) of a running command until
    /// the returned guard is dropped. Drop it as soon as the leader is reaped: from then on the
    /// id is free to be reused by another process.
    pub fn register(&self, group: u32) -> Registered<'_> {
        self.groups().push(group);
        // An interrupt counted between the spawn and the line above found nothing to kill: the
        // count is raised before `interrupt` takes the list, so one of the two sees the other.
        if self.killed() {
            kill(group);
        }
        Registered {
            cancel: self,
            group,
        }
    }

    /// Waits for `duration` unless the second interrupt comes first; returns whether the whole
    /// duration passed. For waits that are work a run lets finish after a first interrupt.
    pub fn sleep(&self, duration: Duration) -> bool {
        self.wait_until(duration, 2)
    }

    /// Waits for `duration` unless an interrupt comes first (or has come); returns whether the
    /// whole duration passed. For waits that are nothing but waiting (a retry's backoff, the
    /// `sleep` tool): the first Ctrl-C ends them, so that the run pauses at once.
    pub fn wait(&self, duration: Duration) -> bool {
        self.wait_until(duration, 1)
    }

    /// Waits for `duration` unless `interrupts` interrupts have arrived.
    fn wait_until(&self, duration: Duration, interrupts: u8) -> bool {
        let deadline = Instant::now().checked_add(duration);
        let mut groups = self.groups();
        loop {
            if self.count() >= interrupts {
                return false;
            }
            // A deadline too far to represent is waited for an hour at a time.
            let left = deadline.map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return true;
            }
            groups = self
                .0
                .killed
                .wait_timeout(groups, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The registered groups. A panic elsewhere while holding the lock must not stop a second
    /// interrupt from killing what runs, so a poisoned lock is used as it is.
    fn groups(&self) -> MutexGuard<'_, Vec<u32>> {
        self.0.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running command's process group, registered with a [`Cancel`] until dropped.
#[must_use = "the group is unregistered when this is dropped"]
#[derive(Debug)]
pub struct Registered<'a> {
    cancel: &'a Cancel,
    group: u32,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut groups = self.cancel.groups();
        if let Some(at) = groups.iter().position(|&g| g == self.group) {
            groups.swap_remove(at);
        }
    }
}

/// Sends SIGKILL to a process group. An error only means that nothing is left in it.
fn kill(group: u32) {
    if let Some(pid) = i32::try_from(group).ok().and_then(Pid::from_raw) {
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Command, Stdio};

    #[test]
    fn interrupts_are_counted_and_shared_by_clones() {
        let cancel = Cancel::default();
        let clone = cancel.clone();
        assert!(!cancel.requested());
        assert_eq!(clone.interrupt(), 1);
        assert!(cancel.requested());
        assert!(!cancel.killed());
        assert_eq!(cancel.interrupt(), 2);
        assert!(clone.killed());
        assert_eq!(cancel.count(), 2);
        // Another value is not affected.
        assert!(!Cancel::default().requested());
    }

    #[test]
    fn the_count_does_not_wrap() {
        let cancel = Cancel::default();
        for _ in 0..300 {
            cancel.interrupt();
        }
        assert_eq!(cancel.count(), u8::MAX);
        assert!(cancel.killed());
    }

    #[test]
    fn a_second_interrupt_from_another_thread_ends_a_sleep() {
        let cancel = Cancel::default();
        let other = cancel.clone();
        let interrupter = std::thread::spawn(move || {
            other.interrupt();
            std::thread::sleep(Duration::from_millis(20));
            other.interrupt();
        });
        assert!(!cancel.sleep(Duration::from_secs(24 * 3600)));
        interrupter.join().unwrap();
    }

    #[test]
    fn the_first_interrupt_ends_a_wait() {
        let cancel = Cancel::default();
        let other = cancel.clone();
        let interrupter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            other.interrupt();
        });
        let started = Instant::now();
        assert!(!cancel.wait(Duration::from_secs(24 * 3600)));
        assert!(started.elapsed() < Duration::from_secs(60));
        interrupter.join().unwrap();
        // Once interrupted, a wait does not start.
        assert!(!cancel.wait(Duration::from_secs(3600)));
        assert!(Cancel::default().wait(Duration::from_millis(1)));
    }

    #[test]
    fn a_short_sleep_runs_out() {
        let cancel = Cancel::default();
        cancel.interrupt();
        // One interrupt does not end a wait.
        assert!(cancel.sleep(Duration::from_millis(1)));
        assert!(cancel.sleep(Duration::ZERO));
    }

    #[test]
    fn the_second_interrupt_kills_registered_groups() {
        let cancel = Cancel::default();
        let mut child = Command::new("sleep")
            .arg("100")
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let registered = cancel.register(child.id());
        cancel.interrupt();
        assert_eq!(
            child.try_wait().unwrap(),
            None,
            "one interrupt kills nothing"
        );
        cancel.interrupt();
        let status = child.wait().unwrap();
        drop(registered);
        assert_eq!(status.signal(), Some(9));
        assert!(cancel.groups().is_empty());
    }

    #[test]
    fn a_group_registered_after_the_second_interrupt_is_killed_at_once() {
        let cancel = Cancel::default();
        cancel.interrupt();
        cancel.interrupt();
        let mut child = Command::new("sleep")
            .arg("100")
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let registered = cancel.register(child.id());
        assert_eq!(child.wait().unwrap().signal(), Some(9));
        drop(registered);
    }
}
