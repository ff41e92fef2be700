//! Care-team membership (agreement 1), folded once for every reader.
//!
//! The rules ([`crate::decide`]) and the read models (the plan's care team) both need who is in
//! the team, in which role, leading what, as main or co-practitioner. Both keep the team's
//! changes by position and fold them here, skipping the changes marked entered in error, so the
//! two can never disagree about who is a member, also after a correction of an addition or a
//! handover long after the fact.

use crate::decide::TeamMember;
use crate::ids::ActorId;
use crate::role::{Lead, Practitioner};

/// One change to the care team, as an event recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TeamChange<'a> {
    /// A member added in a role, leading something as main or co-practitioner.
    Added {
        /// Who.
        actor: &'a ActorId,
        /// Their place in the team as added.
        member: TeamMember,
    },
    /// A member removed.
    Removed {
        /// Who.
        actor: &'a ActorId,
    },
    /// A lead handed to a member, who becomes its main practitioner; whoever was main for
    /// that lead becomes co-practitioner.
    LeadHandedOver {
        /// The lead handed over.
        lead: Lead,
        /// The member who takes it.
        to: &'a ActorId,
    },
}

/// A member of the team as it stands after the fold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveMember<'a> {
    /// Who.
    pub actor: &'a ActorId,
    /// Role, lead and main or co-practitioner, handovers applied.
    pub member: TeamMember,
    /// The position of the addition that made them a member, which the reader's own record
    /// of the addition (name, AGB code, provenance) is found by.
    pub added_at: u64,
}

/// The team after `changes` (by position, ascending), leaving out every change whose position
/// `is_corrected`. Members are in the order they (last) joined.
///
/// A handover applies to the team as it stands at that point of the fold, so correcting an
/// earlier addition also undoes what a later handover did for that member, and correcting a
/// handover gives both members their earlier places back.
pub fn fold<'a>(
    changes: impl IntoIterator<Item = (u64, TeamChange<'a>)>,
    is_corrected: impl Fn(u64) -> bool,
) -> Vec<ActiveMember<'a>> {
    let mut team: Vec<ActiveMember<'a>> = Vec::new();
    for (position, change) in changes {
        if is_corrected(position) {
            continue;
        }
        match change {
            TeamChange::Added { actor, member } => {
                team.retain(|m| m.actor != actor);
                team.push(ActiveMember {
                    actor,
                    member,
                    added_at: position,
                });
            }
            TeamChange::Removed { actor } => team.retain(|m| m.actor != actor),
            TeamChange::LeadHandedOver { lead, to } => {
                // Only to a member: a handover to someone who is not (or no longer) in the team
                // changes nothing.
                if !team.iter().any(|m| m.actor == to) {
                    continue;
                }
                for m in &mut team {
                    if m.actor == to {
                        m.member.lead = lead;
                        m.member.practitioner = Practitioner::Main;
                    } else if m.member.lead == lead && m.member.practitioner == Practitioner::Main {
                        m.member.practitioner = Practitioner::Co;
                    }
                }
            }
        }
    }
    team
}

/// The team's changes by position, owned: what the rules keep of a patient's team.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TeamHistory {
    changes: Vec<(u64, Owned)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Owned {
    Added(ActorId, TeamMember),
    Removed(ActorId),
    LeadHandedOver(Lead, ActorId),
}

impl TeamHistory {
    /// Records an addition at `position` (positions ascend).
    pub fn added(&mut self, position: u64, actor: ActorId, member: TeamMember) {
        self.changes.push((position, Owned::Added(actor, member)));
    }

    /// Records a removal at `position`.
    pub fn removed(&mut self, position: u64, actor: ActorId) {
        self.changes.push((position, Owned::Removed(actor)));
    }

    /// Records a handover at `position`.
    pub fn lead_handed_over(&mut self, position: u64, lead: Lead, to: ActorId) {
        self.changes
            .push((position, Owned::LeadHandedOver(lead, to)));
    }

    /// True when the change at `position` added a member.
    pub fn is_addition(&self, position: u64) -> bool {
        self.changes
            .iter()
            .any(|(p, c)| *p == position && matches!(c, Owned::Added(..)))
    }

    /// The team after every change that `is_corrected` leaves in (see [`fold`]).
    pub fn fold(&self, is_corrected: impl Fn(u64) -> bool) -> Vec<ActiveMember<'_>> {
        let changes = self.changes.iter().map(|(position, change)| {
            let change = match change {
                Owned::Added(actor, member) => TeamChange::Added {
                    actor,
                    member: *member,
                },
                Owned::Removed(actor) => TeamChange::Removed { actor },
                Owned::LeadHandedOver(lead, to) => TeamChange::LeadHandedOver { lead: *lead, to },
            };
            (*position, change)
        });
        fold(changes, is_corrected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::Role;

    fn id(s: &str) -> ActorId {
        ActorId::parse(s).unwrap()
    }

    fn member(role: Role, lead: Lead, practitioner: Practitioner) -> TeamMember {
        TeamMember {
            role,
            lead,
            practitioner,
        }
    }

    #[test]
    fn a_handover_makes_the_receiver_main_and_the_former_main_co() {
        let (gp, gp2) = (id("gp-1"), id("gp-2"));
        let main = member(Role::Gp, Lead::Cvrm, Practitioner::Main);
        let co = member(Role::Gp, Lead::Cvrm, Practitioner::Co);
        let changes = [
            (
                1,
                TeamChange::Added {
                    actor: &gp,
                    member: main,
                },
            ),
            (
                2,
                TeamChange::Added {
                    actor: &gp2,
                    member: co,
                },
            ),
            (
                3,
                TeamChange::LeadHandedOver {
                    lead: Lead::Cvrm,
                    to: &gp2,
                },
            ),
        ];
        let team = fold(changes, |_| false);
        assert_eq!(team.len(), 2);
        assert_eq!(team[0].member.practitioner, Practitioner::Co);
        assert_eq!(team[1].member.practitioner, Practitioner::Main);
        // The handover corrected: both back where they were.
        let team = fold(changes, |p| p == 3);
        assert_eq!(team[0].member.practitioner, Practitioner::Main);
        assert_eq!(team[1].member.practitioner, Practitioner::Co);
    }

    #[test]
    fn a_corrected_addition_is_no_member_even_after_a_handover_that_touched_them() {
        let (gp, gp2) = (id("gp-1"), id("gp-2"));
        let main = member(Role::Gp, Lead::Cvrm, Practitioner::Main);
        let co = member(Role::Gp, Lead::Cvrm, Practitioner::Co);
        let changes = [
            (
                1,
                TeamChange::Added {
                    actor: &gp,
                    member: main,
                },
            ),
            (
                2,
                TeamChange::Added {
                    actor: &gp2,
                    member: co,
                },
            ),
            (
                3,
                TeamChange::LeadHandedOver {
                    lead: Lead::Cvrm,
                    to: &gp2,
                },
            ),
        ];
        let team = fold(changes, |p| p == 1);
        assert_eq!(team.len(), 1, "{team:?}");
        assert_eq!(team[0].actor, &gp2);
        assert_eq!(team[0].member.practitioner, Practitioner::Main);
        assert_eq!(team[0].added_at, 2);
    }

    #[test]
    fn a_member_removed_and_added_again_counts_from_the_new_addition() {
        let gp = id("gp-1");
        let main = member(Role::Gp, Lead::Cvrm, Practitioner::Main);
        let changes = [
            (
                1,
                TeamChange::Added {
                    actor: &gp,
                    member: main,
                },
            ),
            (4, TeamChange::Removed { actor: &gp }),
            (
                9,
                TeamChange::Added {
                    actor: &gp,
                    member: main,
                },
            ),
        ];
        assert_eq!(fold(changes, |_| false)[0].added_at, 9);
        assert!(fold(changes, |p| p == 9).is_empty());
        assert_eq!(fold(changes, |p| p == 4)[0].added_at, 9);
    }
}
