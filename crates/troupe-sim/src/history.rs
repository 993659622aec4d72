//! Histories of operations on registers, and a linearizability check for them
//!
//! A simulated client records each operation on a key with the simulated times it was invoked
//! and completed, and its outcome, which may be unknown (a timeout: it may or may not have taken
//! effect). [`check_register`] decides whether some order of the operations, each taking effect
//! at one instant between its invocation and its completion, explains every outcome seen —
//! Wing and Gong's search, with the visited states remembered (as Lowe, and Porcupine, do), and
//! operations of unknown outcome free to take effect at any time after their invocation, or
//! never.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

/// What an operation did to a register, with what it observed
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterOp {
    /// Set the value (`None`: delete)
    Write(Option<String>),
    /// Set `new` if the value is `expected`; `swapped` is what it answered (`None`: unknown)
    Cas {
        /// The value it required
        expected: Option<String>,
        /// The value it set
        new: Option<String>,
        /// Whether it swapped, if the answer came back
        swapped: Option<bool>,
    },
    /// Read this value
    Read(Option<String>),
}

/// One operation on one key, at simulated times
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// When it was invoked
    pub invoked: Duration,
    /// When its answer came back; `None` if it never did (its outcome is unknown)
    pub completed: Option<Duration>,
    /// What it did
    pub op: RegisterOp,
}

impl Operation {
    fn known(&self) -> bool {
        self.completed.is_some() && !matches!(self.op, RegisterOp::Cas { swapped: None, .. })
    }
}

/// No order of the operations explains their outcomes
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotLinearizable {
    /// The operations, as checked
    pub history: Vec<Operation>,
    /// How far the deepest attempt got: the operations it could order, in order
    pub longest_prefix: Vec<usize>,
}

impl fmt::Display for NotLinearizable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "not linearizable; the longest explainable prefix orders {:?} of:",
            self.longest_prefix
        )?;
        for (i, op) in self.history.iter().enumerate() {
            writeln!(
                f,
                "  #{i}: {:?} .. {:?}: {:?}",
                op.invoked, op.completed, op.op
            )?;
        }
        Ok(())
    }
}

/// Whether `history` (one key's operations, starting from `initial`) is linearizable
///
/// An operation with an unknown outcome (no completion, or a compare-and-set whose answer was
/// lost) may take effect at any point after its invocation, or never; a compare-and-set whose
/// answer was lost may have swapped or not.
///
/// Before searching, an operation of unknown outcome whose effect nothing observed — no read
/// returned the value it would set, no compare-and-set expected it, and no compare-and-set
/// failed, which a stray write could explain — is taken never to have happened: that is one
/// of its allowed outcomes, and no other explains anything more. Without this, each such
/// operation doubles the orders to search (a minute-long simulation with a lossy link leaves
/// dozens per key).
///
/// # Errors
///
/// [`NotLinearizable`] with the history as checked (pruned) and the longest order found.
pub fn check_register(
    history: &[Operation],
    initial: Option<String>,
) -> Result<(), NotLinearizable> {
    let history = &unobserved_pruned(history);
    let mut search = Search {
        ops: history,
        seen: HashSet::new(),
        order: Vec::new(),
        longest: Vec::new(),
    };
    let done = vec![false; history.len()];
    if search.explore(&done, initial) {
        Ok(())
    } else {
        Err(NotLinearizable {
            history: history.to_vec(),
            longest_prefix: search.longest,
        })
    }
}

/// `history` without the operations of unknown outcome that nothing observed
fn unobserved_pruned(history: &[Operation]) -> Vec<Operation> {
    let a_cas_failed = history.iter().any(|op| {
        matches!(
            op.op,
            RegisterOp::Cas {
                swapped: Some(false),
                ..
            }
        )
    });
    let observed = |value: &Option<String>| {
        history.iter().any(|op| match &op.op {
            RegisterOp::Read(seen) => seen == value,
            RegisterOp::Cas { expected, .. } => expected == value,
            RegisterOp::Write(_) => false,
        })
    };
    history
        .iter()
        .filter(|op| {
            op.known()
                || a_cas_failed
                || match &op.op {
                    RegisterOp::Write(new) | RegisterOp::Cas { new, .. } => observed(new),
                    RegisterOp::Read(_) => false,
                }
        })
        .cloned()
        .collect()
}

struct Search<'a> {
    ops: &'a [Operation],
    seen: HashSet<(Vec<bool>, Option<String>)>,
    order: Vec<usize>,
    longest: Vec<usize>,
}

impl Search<'_> {
    /// Whether the operations not yet `done` can follow, from register value `value`.
    fn explore(&mut self, done: &[bool], value: Option<String>) -> bool {
        // every operation whose outcome is known is placed: the rest may never have happened
        if self
            .ops
            .iter()
            .zip(done)
            .all(|(op, done)| *done || !op.known())
        {
            return true;
        }
        if !self.seen.insert((done.to_vec(), value.clone())) {
            return false;
        }
        // the next to take effect must be invoked before every pending known operation completed
        let horizon = self
            .ops
            .iter()
            .zip(done)
            .filter(|(op, done)| !**done && op.known())
            .filter_map(|(op, _)| op.completed)
            .min()
            .unwrap_or(Duration::MAX);
        for i in 0..self.ops.len() {
            if done[i] || self.ops[i].invoked > horizon {
                continue;
            }
            for next in outcomes(&self.ops[i].op, &value) {
                let mut after = done.to_vec();
                after[i] = true;
                self.order.push(i);
                if self.order.len() > self.longest.len() {
                    self.longest = self.order.clone();
                }
                if self.explore(&after, next) {
                    return true;
                }
                self.order.pop();
            }
        }
        false
    }
}

/// The register values `op` can leave when it takes effect on `value` (none: it cannot)
fn outcomes(op: &RegisterOp, value: &Option<String>) -> Vec<Option<String>> {
    match op {
        RegisterOp::Write(new) => vec![new.clone()],
        RegisterOp::Read(seen) => {
            if seen == value {
                vec![value.clone()]
            } else {
                vec![]
            }
        }
        RegisterOp::Cas {
            expected,
            new,
            swapped,
        } => {
            let matches = expected == value;
            match swapped {
                Some(true) if matches => vec![new.clone()],
                Some(false) if !matches => vec![value.clone()],
                Some(_) => vec![],
                None if matches => vec![new.clone()],
                None => vec![value.clone()],
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(invoked: u64, completed: Option<u64>, op: RegisterOp) -> Operation {
        Operation {
            invoked: Duration::from_millis(invoked),
            completed: completed.map(Duration::from_millis),
            op,
        }
    }

    fn v(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn sequential_writes_and_reads_are_linearizable() {
        let h = [
            op(0, Some(1), RegisterOp::Write(v("a"))),
            op(2, Some(3), RegisterOp::Read(v("a"))),
            op(4, Some(5), RegisterOp::Write(v("b"))),
            op(6, Some(7), RegisterOp::Read(v("b"))),
        ];
        assert!(check_register(&h, None).is_ok());
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_not() {
        let h = [
            op(0, Some(1), RegisterOp::Write(v("a"))),
            op(2, Some(3), RegisterOp::Write(v("b"))),
            op(4, Some(5), RegisterOp::Read(v("a"))),
        ];
        let err = check_register(&h, None).unwrap_err();
        assert_eq!(err.longest_prefix, vec![0, 1]);
    }

    #[test]
    fn overlapping_operations_may_take_effect_in_either_order() {
        let h = [
            op(0, Some(10), RegisterOp::Write(v("a"))),
            op(1, Some(9), RegisterOp::Write(v("b"))),
            op(11, Some(12), RegisterOp::Read(v("a"))),
        ];
        assert!(check_register(&h, None).is_ok());
    }

    #[test]
    fn an_unknown_write_may_take_effect_late_or_never() {
        let late = [
            op(0, None, RegisterOp::Write(v("a"))),
            op(5, Some(6), RegisterOp::Read(None)),
            op(7, Some(8), RegisterOp::Read(v("a"))),
        ];
        assert!(check_register(&late, None).is_ok());
        let never = [
            op(0, None, RegisterOp::Write(v("a"))),
            op(5, Some(6), RegisterOp::Read(None)),
        ];
        assert!(check_register(&never, None).is_ok());
        // but not take effect, then be undone
        let undone = [
            op(0, None, RegisterOp::Write(v("a"))),
            op(5, Some(6), RegisterOp::Read(v("a"))),
            op(7, Some(8), RegisterOp::Read(None)),
        ];
        assert!(check_register(&undone, None).is_err());
    }

    #[test]
    fn a_cas_must_agree_with_the_value_it_saw() {
        let swapped_wrongly = [
            op(0, Some(1), RegisterOp::Write(v("a"))),
            op(
                2,
                Some(3),
                RegisterOp::Cas {
                    expected: v("b"),
                    new: v("c"),
                    swapped: Some(true),
                },
            ),
        ];
        assert!(check_register(&swapped_wrongly, None).is_err());
        let unknown_cas = [
            op(0, Some(1), RegisterOp::Write(v("a"))),
            op(
                2,
                None,
                RegisterOp::Cas {
                    expected: v("a"),
                    new: v("c"),
                    swapped: None,
                },
            ),
            op(4, Some(5), RegisterOp::Read(v("c"))),
        ];
        assert!(check_register(&unknown_cas, None).is_ok());
    }

    /// Sixty writes of unknown outcome, none of them observed, around a stale read: the
    /// search ignores them (else 2^60 orders) and still finds the stale read
    #[test]
    fn unobserved_writes_of_unknown_outcome_cost_nothing_and_hide_nothing() {
        let mut history = vec![op(0, Some(1), RegisterOp::Write(v("a")))];
        for i in 0..60 {
            history.push(op(2 + i, None, RegisterOp::Write(v(&format!("lost{i}")))));
        }
        history.push(op(100, Some(101), RegisterOp::Write(v("b"))));
        history.push(op(102, Some(103), RegisterOp::Read(v("b"))));
        assert!(check_register(&history, None).is_ok());
        history.push(op(104, Some(105), RegisterOp::Read(v("a"))));
        assert!(check_register(&history, None).is_err(), "a stale read");
        // an unknown write that was observed still counts
        let seen = [
            op(0, Some(1), RegisterOp::Write(v("a"))),
            op(2, None, RegisterOp::Write(v("b"))),
            op(4, Some(5), RegisterOp::Read(v("b"))),
        ];
        assert!(check_register(&seen, None).is_ok());
        assert!(check_register(&[seen[0].clone(), seen[2].clone()], None).is_err());
    }
}
