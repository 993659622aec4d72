//! foca's settings, derived from the one knob troupe exposes: `NetConfig::peer_down_timeout`,
//! "a killed peer is reported down within about this long".

use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

use foca::{Config, PeriodicParams};

/// The largest membership packet sent or accepted. Fits a QUIC datagram on the smallest path
/// QUIC allows (1,200-byte UDP payloads leave about 1,160 bytes for a datagram frame) with the
/// one byte in front that says what the datagram carries.
pub(crate) const MAX_PACKET: usize = 1100;

/// The shortest probe period: below it, timers would outrun the runtime's own scheduling.
const MIN_PROBE_PERIOD: Duration = Duration::from_millis(10);

/// What the driver runs foca with, and the bound on what one peer may send it.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) foca: Config,
    /// Membership datagrams one peer may send per second, on average.
    pub(crate) peer_rate: u32,
    /// And in a burst.
    pub(crate) peer_burst: u32,
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

/// The settings for a cluster whose killed nodes are to be reported down within
/// `peer_down` (D): probe a member every D/15, ask others to probe it for us if it has not
/// answered within 40 % of that, and declare a suspect down after four probe periods. The
/// detection time (docs/architecture.md) is then mostly under D/2, and under D up to ten
/// nodes; a process stalled for more than about a third of D is declared down and rejoins.
pub(crate) fn settings(peer_down: Duration) -> Settings {
    let probe_period = (peer_down / 15).max(MIN_PROBE_PERIOD);
    let foca = Config {
        probe_period,
        probe_rtt: probe_period * 2 / 5,
        num_indirect_probes: nz(3),
        max_transmissions: NonZeroU8::new(6).unwrap_or(NonZeroU8::MIN),
        suspect_to_down_after: probe_period * 4,
        // identities are unique per start and rejoin, so a down one is never reused: this only
        // bounds how long it is remembered
        remove_down_after: Some(Duration::from_secs(3600)),
        max_packet_size: nz(MAX_PACKET),
        // a node declared down by mistake learns it at once and rejoins as a new identity
        notify_down_members: true,
        periodic_announce: Some(PeriodicParams {
            frequency: Duration::from_secs(10),
            num_members: nz(1),
        }),
        // heals a partition once the link is back, whoever saw it first
        periodic_announce_to_down_members: Some(PeriodicParams {
            frequency: Duration::from_secs(2),
            num_members: nz(1),
        }),
        // only sent when there is news to spread
        periodic_gossip: Some(PeriodicParams {
            frequency: probe_period / 2,
            num_members: nz(3),
        }),
    };
    // A peer's share of the protocol is a ping and an ack per probe period each way, a few
    // indirect probes, and gossip twice a period: 16 per period leaves room to spare.
    let per_second = 16.0 / probe_period.as_secs_f64();
    Settings {
        foca,
        peer_rate: (per_second.ceil() as u32).max(64),
        peer_burst: 64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_three_seconds_gives_the_documented_settings() {
        let s = settings(Duration::from_secs(3));
        assert_eq!(s.foca.probe_period, Duration::from_millis(200));
        assert_eq!(s.foca.probe_rtt, Duration::from_millis(80));
        assert_eq!(s.foca.suspect_to_down_after, Duration::from_millis(800));
        assert_eq!(
            s.foca.periodic_gossip.as_ref().map(|p| p.frequency),
            Some(Duration::from_millis(100))
        );
        assert_eq!(s.peer_rate, 80);
    }

    #[test]
    fn every_derived_setting_is_valid_for_foca_and_scales_with_the_knob() {
        for ms in [1, 100, 600, 1000, 1500, 3000, 10_000, 60_000] {
            let d = Duration::from_millis(ms);
            let s = settings(d).foca;
            assert!(
                s.probe_rtt > Duration::ZERO && s.probe_rtt < s.probe_period,
                "{ms}"
            );
            assert!(s.suspect_to_down_after > Duration::ZERO);
            assert!(s.periodic_gossip.as_ref().unwrap().frequency > Duration::ZERO);
            if d >= MIN_PROBE_PERIOD * 15 {
                // the slowest single-prober path: a probe period to notice, the indirect
                // cycle, the suspicion, and a gossip round to tell the others
                let worst_one_prober =
                    s.probe_period * 2 + s.suspect_to_down_after + s.probe_period / 2;
                assert!(worst_one_prober <= d / 2, "{ms}: {worst_one_prober:?}");
            }
        }
    }
}
