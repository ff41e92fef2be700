//! Care-team governance (agreement 1, seed 001): who founds a patient's care team, who leads,
//! who may add and remove whom, and what a care group's administrator may correct.
//!
//! - A care team is founded by a GP or a specialist, never by a supporting role or the patient.
//! - Each lead (CVRM: the first line; the organ disease: the second line) has at most one main
//!   practitioner. Only they hand the lead over (`hand_over_lead`) or remove another practitioner
//!   of their line. A lead without a main practitioner (a plan founded by the other line) is
//!   taken by a prescriber of its line.
//! - A care group's administrator (`care_group_admin`, in no team and no line) corrects a wrongly
//!   founded record: adds and removes members and hands leads over, always with a reason, and
//!   both lines are told (`notify`).
//!
//! Whether a member is a registered actor in the role they hold, and which patient a patient
//! actor is, is known only to the actor registry of the API, which checks it before appending.

use crate::error::{Rejection, RejectionCode};
use crate::event::{Command, Event, LeadHandover, Member, MemberRemoval};
use crate::ids::ActorId;
use crate::record::Actor;
use crate::role::{Lead, Line, Practitioner, Role};

use crate::decide::{Decision, PatientState};

/// The lead a line holds: CVRM for the first line, the organ disease for the second.
pub fn lead_of(line: Line) -> Lead {
    match line {
        Line::First => Lead::Cvrm,
        Line::Second => Lead::OrganDisease,
        Line::Patient | Line::CareGroup => Lead::None,
    }
}

/// The line a lead belongs to.
pub fn line_of(lead: Lead) -> Option<Line> {
    match lead {
        Lead::Cvrm => Some(Line::First),
        Lead::OrganDisease => Some(Line::Second),
        Lead::None => None,
    }
}

fn lead_name(lead: Lead) -> &'static str {
    match lead {
        Lead::Cvrm => "CVRM",
        Lead::OrganDisease => "the organ disease",
        Lead::None => "no lead",
    }
}

/// The main practitioner of `lead`, if the lead is assigned.
pub fn main_practitioner(state: &PatientState, lead: Lead) -> Option<&ActorId> {
    if lead == Lead::None {
        return None;
    }
    state
        .members()
        .find(|(_, m)| m.lead == lead && m.practitioner == Practitioner::Main)
        .map(|(id, _)| id)
}

/// True for the commands that found a care team when a patient has none: the actor adding
/// themselves, or starting shared care.
pub fn is_founding(actor: &Actor, command: &Command) -> bool {
    matches!(command, Command::StartSharedCare(_))
        || matches!(command, Command::AddCareTeamMember(m) if m.actor == actor.id)
}

/// Who may found a care team (agreement 1): a GP or a specialist, with a founding command.
/// Checked before anything of the record's state is revealed; [`found`] then decides the
/// founding's content.
pub fn may_found(actor: &Actor, command: &Command) -> Result<(), Rejection> {
    if actor.role == Role::Patient {
        return Err(Rejection::new(
            RejectionCode::NotInCareTeam,
            "a patient's care team is founded by a practitioner; ask your GP or specialist to add you",
        ));
    }
    let founding = is_founding(actor, command);
    if founding && !actor.role.founds_care_teams() {
        return Err(founder_not_permitted(actor));
    }
    if !founding {
        return Err(Rejection::new(
            RejectionCode::NoCareTeam,
            "this patient has no care team yet: first add yourself, in your own role, as a \
             care-team member (add_care_team_member) or start shared care (start_shared_care)",
        ));
    }
    Ok(())
}

/// The refusal of a founding command by a role that does not found care teams; the same
/// whether or not the patient has a record, so that it reveals nothing of one.
pub fn founder_not_permitted(actor: &Actor) -> Rejection {
    Rejection::not_permitted(
        RejectionCode::FounderNotPermitted,
        format!(
            "a {} does not found a care team; the patient's GP or specialist founds it and \
             adds you (agreement 1)",
            actor.role
        ),
    )
}

/// The first event of a patient founds the care team: a GP or a specialist adds themselves, or
/// starts shared care and is added as its first member, main practitioner of their line's lead.
pub fn found(actor: &Actor, command: &Command) -> Result<Decision, Rejection> {
    may_found(actor, command)?;
    match command {
        Command::AddCareTeamMember(m) if m.actor == actor.id && m.role == actor.role => {
            crate::decide::check_member(m)?;
            Ok(Decision {
                events: vec![command.clone().into_event()],
                warnings: vec![],
            })
        }
        Command::StartSharedCare(_) => {
            let founder = Member {
                actor: actor.id.clone(),
                name: actor.name.clone(),
                agb: None,
                role: actor.role,
                lead: crate::decide::default_lead(actor.role),
                practitioner: Practitioner::Main,
            };
            Ok(Decision {
                events: vec![
                    Event::CareTeamMemberAdded(founder),
                    command.clone().into_event(),
                ],
                warnings: vec![],
            })
        }
        _ => Err(Rejection::new(
            RejectionCode::NoCareTeam,
            "this patient has no care team yet: first add yourself, in your own role, as a \
             care-team member (add_care_team_member) or start shared care (start_shared_care)",
        )),
    }
}

/// The commands a care group's administrator may give: corrections of who is in the team and
/// who leads, on a record that exists.
pub fn admin_may(command: &Command) -> bool {
    matches!(
        command,
        Command::AddCareTeamMember(_)
            | Command::RemoveCareTeamMember(_)
            | Command::HandOverLead(_)
            | Command::EndSharedCare(_)
    )
}

/// The governance rules on adding a member, once the actor may add members at all.
pub fn check_addition(state: &PatientState, m: &Member) -> Result<(), Rejection> {
    if m.practitioner != Practitioner::Main || m.lead == Lead::None {
        return Ok(());
    }
    if let Some(main) = main_practitioner(state, m.lead) {
        return Err(Rejection::new(
            RejectionCode::LeadHasMainPractitioner,
            format!(
                "{main} is the main practitioner for {}; add {} as co-practitioner, and {main} \
                 hands the lead over (hand_over_lead)",
                lead_name(m.lead),
                m.actor
            ),
        ));
    }
    Ok(())
}

/// The governance rules on removing a member.
pub fn check_removal(
    state: &PatientState,
    actor: &Actor,
    removal: &MemberRemoval,
) -> Result<(), Rejection> {
    let Some(leaving) = state.member(&removal.actor) else {
        return Err(Rejection::new(
            RejectionCode::NotInCareTeam,
            format!("{} is not in the care team", removal.actor),
        ));
    };
    if actor.role == Role::CareGroupAdmin {
        return Ok(());
    }
    let line = leaving.role.line();
    let lead = lead_of(line);
    let main = main_practitioner(state, lead);
    if removal.actor == actor.id {
        let others_of_line = state
            .members()
            .filter(|(id, m)| **id != actor.id && m.role.line() == line && m.role.prescribes())
            .count();
        if main == Some(&actor.id) && others_of_line > 0 {
            return Err(Rejection::new(
                RejectionCode::MainPractitionerHandsOverFirst,
                format!(
                    "you are the main practitioner for {}; hand the lead over (hand_over_lead) \
                     before you leave the care team",
                    lead_name(lead)
                ),
            ));
        }
        return Ok(());
    }
    if line == Line::Patient {
        let is_a_main = [Lead::Cvrm, Lead::OrganDisease]
            .into_iter()
            .any(|l| main_practitioner(state, l) == Some(&actor.id));
        return if is_a_main {
            Ok(())
        } else {
            Err(Rejection::not_permitted(
                RejectionCode::OnlyMainPractitionerRemoves,
                "only a main practitioner removes the patient from their care team",
            ))
        };
    }
    if actor.line() != line {
        return Err(Rejection::not_permitted(
            RejectionCode::OtherLinesMember,
            format!(
                "{} is a practitioner of the {line}; only the {line}'s main practitioner removes \
                 them (agreement 1)",
                removal.actor
            ),
        ));
    }
    match main {
        Some(main) if *main == actor.id => Ok(()),
        Some(main) => Err(Rejection::not_permitted(
            RejectionCode::OnlyMainPractitionerRemoves,
            format!(
                "only {main}, the main practitioner for {}, removes a practitioner of the {line}",
                lead_name(lead)
            ),
        )),
        // No main practitioner: the lead is unassigned, and a prescriber of the line acts.
        None if actor.role.prescribes() => Ok(()),
        None => Err(Rejection::not_permitted(
            RejectionCode::OnlyMainPractitionerRemoves,
            format!(
                "{} is unassigned; a prescriber of the {line} takes the lead (hand_over_lead) \
                 and then decides who stays",
                lead_name(lead)
            ),
        )),
    }
}

/// The governance rules on handing a lead over.
pub fn check_handover(
    state: &PatientState,
    actor: &Actor,
    handover: &LeadHandover,
) -> Result<(), Rejection> {
    let Some(line) = line_of(handover.lead) else {
        return Err(Rejection::new(
            RejectionCode::NotALead,
            "hand over \"cvrm\" or \"organ_disease\"; \"none\" is not a lead",
        ));
    };
    let Some(to) = state.member(&handover.to) else {
        return Err(Rejection::new(
            RejectionCode::NotInCareTeam,
            format!(
                "{} is not in the care team; add them first (add_care_team_member)",
                handover.to
            ),
        ));
    };
    if to.role.line() != line || !to.role.prescribes() {
        return Err(Rejection::new(
            RejectionCode::LeadDoesNotFitLine,
            format!(
                "{} is a {}; {} is led by a prescribing practitioner of the {line}",
                handover.to,
                to.role,
                lead_name(handover.lead)
            ),
        ));
    }
    let main = main_practitioner(state, handover.lead);
    if main == Some(&handover.to) {
        return Err(Rejection::new(
            RejectionCode::AlreadyMainPractitioner,
            format!(
                "{} is already the main practitioner for {}",
                handover.to,
                lead_name(handover.lead)
            ),
        ));
    }
    if actor.role == Role::CareGroupAdmin {
        return Ok(());
    }
    match main {
        Some(main) if *main == actor.id => Ok(()),
        Some(main) => Err(Rejection::not_permitted(
            RejectionCode::OnlyMainPractitionerHandsOver,
            format!(
                "only {main}, the main practitioner for {}, hands the lead over",
                lead_name(handover.lead)
            ),
        )),
        None if handover.to == actor.id => Ok(()),
        None => Err(Rejection::not_permitted(
            RejectionCode::OnlyMainPractitionerHandsOver,
            format!(
                "{} is unassigned: a prescriber of the {line} takes it by handing it to themselves",
                lead_name(handover.lead)
            ),
        )),
    }
}
