//! The notify-the-other-party rule: who must be told about an event.
//!
//! One rule, used by `decide` (to check acknowledgements) and by the projections (to derive
//! the messages), so the two can never disagree. One event can notify several recipients (the
//! other line and the patient); a notification is named by the position of the event that
//! caused it together with its recipient, and each recipient acknowledges its own.

use crate::event::{Event, NoteKind};
use crate::ids::ActorId;
use crate::role::{Line, Role};

/// What the rule needs to know of the patient's care team, as it stood before the event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// True while shared care is active.
    pub shared_care: bool,
    /// True when the patient is a member of their own care team (and can read their plan).
    pub patient_in_team: bool,
    /// For a member's removal: the line of the member who leaves.
    pub removed_member_line: Option<Line>,
    /// The author is outside the care team, writing under a broken glass (or breaking it):
    /// both lines are told at once.
    pub acute: bool,
}

impl Context {
    /// The context of `event` from the team as it stands before it: whether shared care is
    /// active, and each member's id and role. The write model and the read models both build it
    /// here, from their own state, so that the rule sees the same facts in both.
    ///
    /// `author` wrote the event; `emergency` is true when they hold emergency access to the
    /// record (or the event opens it).
    pub fn before<'a>(
        event: &Event,
        shared_care: bool,
        team: impl IntoIterator<Item = (&'a ActorId, Role)>,
        author: &ActorId,
        emergency: bool,
    ) -> Context {
        let leaving = match event {
            Event::CareTeamMemberRemoved(r) => Some(&r.actor),
            _ => None,
        };
        let mut context = Context {
            shared_care,
            ..Context::default()
        };
        let mut author_in_team = false;
        for (actor, role) in team {
            author_in_team |= actor == author;
            context.patient_in_team |= role == Role::Patient;
            if leaving == Some(actor) {
                context.removed_member_line = Some(role.line());
            }
        }
        context.acute = !author_in_team && (emergency || matches!(event, Event::GlassBroken(_)));
        context
    }
}

/// The recipients of `event`, recorded by someone of the `author` line, in a fixed order
/// (first line, second line, patient), never the author's own line.
///
/// - medication started, changed or stopped by one line during shared care: the other line
///   (agreement 6);
/// - a target set or withdrawn, a medication preference, a panel extension or a letter by the
///   specialist: the GP (agreements 2 and 3); the same from the GP during shared care: the
///   specialist;
/// - a lab result or measurement recorded in the second line: the GP (agreement 5);
/// - shared care started or ended, a lead handed over: the other line (agreement 1);
/// - a practitioner added to or removed from the care team: their line, when it is not the
///   author's, and the other line during shared care (agreement 1);
/// - a new or withdrawn target and every medication change: the patient, when the patient is in
///   their own care team (seed 004: the patient sees what changed in their own plan);
/// - anything a care group's administrator records: both lines (a correction of the team);
/// - breaking the glass, and everything recorded under it by a practitioner outside the team:
///   both lines at once (seed 002), and the patient of what they are told of anyway.
pub fn recipients(event: &Event, author: Line, context: Context) -> Vec<Line> {
    // Signing keys are about no patient's plan: nobody is told in a care team.
    if matches!(
        event,
        Event::SigningKeyRegistered(_) | Event::SigningKeyRevoked(_)
    ) {
        return vec![];
    }
    if author == Line::CareGroup {
        return vec![Line::First, Line::Second];
    }
    if context.acute {
        let mut lines = vec![Line::First, Line::Second];
        if context.patient_in_team && tells_patient(event) {
            lines.push(Line::Patient);
        }
        return lines;
    }
    let mut lines = Vec::with_capacity(2);
    if let Some(other) = other_line(event, author, context) {
        lines.push(other);
    }
    if context.patient_in_team && author != Line::Patient && tells_patient(event) {
        lines.push(Line::Patient);
    }
    lines
}

/// The practitioner line (other than the author's) that must be told, if any.
fn other_line(event: &Event, author: Line, context: Context) -> Option<Line> {
    let other = author.other()?;
    let shared_care = context.shared_care;
    let letter = |kind: NoteKind| matches!(kind, NoteKind::ReturnLetter | NoteKind::InterimLetter);
    let told = match event {
        Event::MedicationStarted(_)
        | Event::MedicationDoseChanged(_)
        | Event::MedicationStopped(_) => shared_care,
        Event::TargetSet(_)
        | Event::TargetWithdrawn(_)
        | Event::MedicationPreferenceRecorded(_)
        | Event::AnnualPanelExtended(_) => author == Line::Second || shared_care,
        Event::NoteAdded(note) if letter(note.kind) => author == Line::Second || shared_care,
        Event::LabResultRecorded(_) | Event::MeasurementRecorded(_) => author == Line::Second,
        Event::SharedCareStarted(_) | Event::SharedCareEnded(_) | Event::LeadHandedOver(_) => true,
        Event::CareTeamMemberAdded(m) => shared_care || m.role.line() == other,
        Event::CareTeamMemberRemoved(_) => {
            shared_care || context.removed_member_line == Some(other)
        }
        _ => false,
    };
    told.then_some(other)
}

/// Changes the patient is told about in their own plan.
fn tells_patient(event: &Event) -> bool {
    matches!(
        event,
        Event::TargetSet(_)
            | Event::TargetWithdrawn(_)
            | Event::MedicationStarted(_)
            | Event::MedicationDoseChanged(_)
            | Event::MedicationStopped(_)
    )
}

/// The id of a notification: `n-<position>-<recipient>` (`n-42-first`, `n-42-patient`).
pub fn notification_id(position: u64, recipient: Line) -> String {
    format!("n-{position}-{}", recipient.as_str())
}

/// Parses a notification id. `n-42` without a recipient (the ids before notifications were per
/// recipient) names the caller's own notification, so it yields `None` as the recipient.
pub fn parse_notification_id(raw: &str) -> Option<(u64, Option<Line>)> {
    let rest = raw.strip_prefix("n-")?;
    let (position, recipient) = match rest.split_once('-') {
        Some((p, line)) => (p, Some(Line::parse(line)?)),
        None => (rest, None),
    };
    if position.is_empty() || !position.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((position.parse().ok()?, recipient))
}

/// Who must be told about a correction (`entered_in_error`) made in the `corrector`'s line.
/// `told` lists the lines that were told about the corrected entry and about the entries the
/// correction voids with it (the dose changes and stop of a corrected medication start), and the
/// lines that wrote those voided entries.
///
/// Whoever was told about an entry is told about its correction (agreement 6), and so is a line
/// whose own entries a correction voids. The corrector's own line is never among them: an entry is
/// corrected only in its author's line.
pub fn correction_recipients(corrector: Line, told: impl IntoIterator<Item = Line>) -> Vec<Line> {
    let mut lines: Vec<Line> = told.into_iter().filter(|line| *line != corrector).collect();
    lines.sort();
    lines.dedup();
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_ids_round_trip_and_accept_the_short_form() {
        assert_eq!(notification_id(42, Line::Patient), "n-42-patient");
        assert_eq!(
            parse_notification_id("n-42-second"),
            Some((42, Some(Line::Second)))
        );
        assert_eq!(parse_notification_id("n-7"), Some((7, None)));
        assert_eq!(parse_notification_id("n--first"), None);
        assert_eq!(parse_notification_id("n-4x"), None);
        assert_eq!(parse_notification_id("n-4-third"), None);
    }
}
