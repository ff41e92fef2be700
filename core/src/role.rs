//! Care-team roles, the line each belongs to, and what a member leads.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The line of care a role belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Line {
    /// The GP practice and its partners (huisartspraktijk): CVRM.
    First,
    /// The hospital specialist: the organ disease.
    Second,
    /// The patient, acting on their own plan.
    Patient,
    /// The care group (zorggroep) that governs the shared-care arrangement: in neither line.
    CareGroup,
}

impl Line {
    /// The other practitioner line, which agreements 4 to 6 protect; `None` for the patient.
    pub fn other(self) -> Option<Line> {
        match self {
            Line::First => Some(Line::Second),
            Line::Second => Some(Line::First),
            Line::Patient | Line::CareGroup => None,
        }
    }

    /// A lower-case name for messages and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Line::First => "first",
            Line::Second => "second",
            Line::Patient => "patient",
            Line::CareGroup => "care_group",
        }
    }

    /// Parses the lower-case name (`first`, `second`, `patient`).
    pub fn parse(raw: &str) -> Option<Line> {
        [Line::First, Line::Second, Line::Patient, Line::CareGroup]
            .into_iter()
            .find(|l| l.as_str() == raw)
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Line::First => "first line",
            Line::Second => "second line",
            Line::Patient => "patient",
            Line::CareGroup => "care group",
        })
    }
}

/// A role in a patient's care team.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// General practitioner (huisarts).
    Gp,
    /// Practice nurse (POH, praktijkverpleegkundige), works under the GP.
    PracticeNurse,
    /// Practice assistant (doktersassistent): measurements, lab requests.
    PracticeAssistant,
    /// Cardiologist (cardioloog).
    Cardiologist,
    /// Vascular internist.
    VascularInternist,
    /// Elderly-care physician (specialist ouderengeneeskunde); counted in the first line.
    ElderlyCarePhysician,
    /// Pharmacist (apotheker): medication review; counted in the first line.
    Pharmacist,
    /// The patient.
    Patient,
    /// A care group's administrator: in no care team and no line; corrects a wrongly founded
    /// record (who is in the team, who leads), always with a reason, and the team is told.
    CareGroupAdmin,
    /// A GP at an out-of-hours post (huisartsenpost): acute first-line care, in no care team;
    /// reads and records acute interventions by breaking the glass.
    OutOfHoursGp,
    /// An emergency physician (SEH-arts): acute care in the hospital, in no care team; reads and
    /// records acute interventions by breaking the glass.
    EmergencyPhysician,
}

impl Role {
    /// Every role, for listings and property tests.
    pub const ALL: [Role; 11] = [
        Role::Gp,
        Role::PracticeNurse,
        Role::PracticeAssistant,
        Role::Cardiologist,
        Role::VascularInternist,
        Role::ElderlyCarePhysician,
        Role::Pharmacist,
        Role::Patient,
        Role::CareGroupAdmin,
        Role::OutOfHoursGp,
        Role::EmergencyPhysician,
    ];

    /// The line this role works in.
    pub fn line(self) -> Line {
        match self {
            Role::Gp
            | Role::PracticeNurse
            | Role::PracticeAssistant
            | Role::ElderlyCarePhysician
            | Role::Pharmacist
            | Role::OutOfHoursGp => Line::First,
            Role::Cardiologist | Role::VascularInternist | Role::EmergencyPhysician => Line::Second,
            Role::Patient => Line::Patient,
            Role::CareGroupAdmin => Line::CareGroup,
        }
    }

    /// True for the roles that may found a care team: the GP and the specialists.
    pub fn founds_care_teams(self) -> bool {
        matches!(
            self,
            Role::Gp | Role::Cardiologist | Role::VascularInternist
        )
    }

    /// True for roles that may prescribe and set targets.
    pub fn prescribes(self) -> bool {
        matches!(
            self,
            Role::Gp
                | Role::Cardiologist
                | Role::VascularInternist
                | Role::ElderlyCarePhysician
                | Role::OutOfHoursGp
                | Role::EmergencyPhysician
        )
    }

    /// True for the practitioners who may break the glass: every role that treats patients,
    /// not the patient and not the care group's administrator.
    pub fn treats(self) -> bool {
        !matches!(self, Role::Patient | Role::CareGroupAdmin)
    }

    /// The snake-case name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Gp => "gp",
            Role::PracticeNurse => "practice_nurse",
            Role::PracticeAssistant => "practice_assistant",
            Role::Cardiologist => "cardiologist",
            Role::VascularInternist => "vascular_internist",
            Role::ElderlyCarePhysician => "elderly_care_physician",
            Role::Pharmacist => "pharmacist",
            Role::Patient => "patient",
            Role::CareGroupAdmin => "care_group_admin",
            Role::OutOfHoursGp => "out_of_hours_gp",
            Role::EmergencyPhysician => "emergency_physician",
        }
    }

    /// Parses the snake-case name.
    pub fn parse(raw: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == raw)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Gp => "GP",
            Role::PracticeNurse => "practice nurse",
            Role::PracticeAssistant => "practice assistant",
            Role::Cardiologist => "cardiologist",
            Role::VascularInternist => "vascular internist",
            Role::ElderlyCarePhysician => "elderly-care physician",
            Role::Pharmacist => "pharmacist",
            Role::Patient => "patient",
            Role::CareGroupAdmin => "care-group administrator",
            Role::OutOfHoursGp => "GP at an out-of-hours post",
            Role::EmergencyPhysician => "emergency physician",
        })
    }
}

/// What a care-team member has the lead ("regie") on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lead {
    /// Cardiovascular risk management: the GP's lead.
    Cvrm,
    /// The organ disease: the specialist's lead.
    OrganDisease,
    /// No lead of their own (supporting roles, the patient).
    None,
}

/// Main or co-practitioner (hoofdbehandelaar / medebehandelaar).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Practitioner {
    /// Hoofdbehandelaar.
    Main,
    /// Medebehandelaar.
    Co,
    /// Not a practitioner (the patient, a supporting role).
    NotApplicable,
}
