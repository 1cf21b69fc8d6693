//! Keeps task creates and task deletes of one pod from overlapping: deleting the shim's last
//! task while another task is being created makes the shim shut down under that create. Any
//! number of creates may run together, and any number of deletes.

use std::sync::Mutex;

use tokio::sync::Notify;

/// Which side of the gate an operation is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Create,
    Delete,
}

/// The gate of one pod's shim.
#[derive(Debug, Default)]
pub(crate) struct ShimGate {
    /// Operations inside, per side: `[creates, deletes]`.
    inside: Mutex<[usize; 2]>,
    left: Notify,
}

/// Held while an operation runs; leaving wakes the other side once this side is empty.
pub(crate) struct Pass<'a> {
    gate: &'a ShimGate,
    side: Side,
}

impl ShimGate {
    fn index(side: Side) -> (usize, usize) {
        match side {
            Side::Create => (0, 1),
            Side::Delete => (1, 0),
        }
    }

    /// Waits until no operation of the other side runs, then enters.
    pub async fn enter(&self, side: Side) -> Pass<'_> {
        let (mine, other) = Self::index(side);
        loop {
            // Registered before the check, so a leave between the check and the wait is seen.
            let left = self.left.notified();
            {
                let mut inside = self.inside.lock().unwrap_or_else(|p| p.into_inner());
                if inside[other] == 0 {
                    inside[mine] += 1;
                    return Pass { gate: self, side };
                }
            }
            left.await;
        }
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let (mine, _) = ShimGate::index(self.side);
        let mut inside = self.gate.inside.lock().unwrap_or_else(|p| p.into_inner());
        inside[mine] -= 1;
        if inside[mine] == 0 {
            self.gate.left.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn one_side_at_a_time_and_many_of_a_side() {
        let gate = Arc::new(ShimGate::default());
        let first = gate.enter(Side::Create).await;
        let second = gate.enter(Side::Create).await;
        let waiting = {
            let gate = gate.clone();
            tokio::spawn(async move {
                let _pass = gate.enter(Side::Delete).await;
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "a delete entered while creates ran");
        drop(first);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiting.is_finished(),
            "a delete entered while a create ran"
        );
        drop(second);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("the delete entered once the creates were done")
            .unwrap();
        let _a = gate.enter(Side::Delete).await;
        let _b = gate.enter(Side::Delete).await;
    }
}
