//! The three kinds of movement and what differs between them: names, permissions, topics,
//! and which request fields they have.

/// A kind of movement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Money from outside onto a card (method's system account → card).
    Topup,
    /// Money from a card to outside (card → method's system account).
    Withdraw,
    /// Money from one card to another.
    Transfer,
}

impl Kind {
    /// `topup`, `withdraw`, `transfer` (also the ledger posting kind).
    pub fn name(self) -> &'static str {
        match self {
            Self::Topup => "topup",
            Self::Withdraw => "withdraw",
            Self::Transfer => "transfer",
        }
    }

    /// The topic of its completion events.
    pub fn topic(self) -> &'static str {
        match self {
            Self::Topup => events::topics::TOPUP_EVENTS,
            Self::Withdraw => events::topics::WITHDRAW_EVENTS,
            Self::Transfer => events::topics::TRANSFER_EVENTS,
        }
    }

    /// Permission to read everyone's movements of this kind.
    pub fn read_permission(self) -> &'static str {
        match self {
            Self::Topup => "topups.read",
            Self::Withdraw => "withdraws.read",
            Self::Transfer => "transfers.read",
        }
    }

    /// Permission to move money from (or onto) anyone's card.
    pub fn write_permission(self) -> &'static str {
        match self {
            Self::Topup => "topups.write",
            Self::Withdraw => "withdraws.write",
            Self::Transfer => "transfers.write",
        }
    }

    /// Whether its requests name a top-up / withdraw method.
    pub fn has_method(self) -> bool {
        !matches!(self, Self::Transfer)
    }

    /// The request field naming the (source) card.
    pub fn card_field(self) -> &'static str {
        match self {
            Self::Transfer => "from_card_number",
            _ => "card_number",
        }
    }
}
