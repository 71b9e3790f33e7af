//! Why producing a dead letter failed, and whether trying again can help on its own: transport
//! trouble, timeouts, a full queue or a leader election pass; a record too large for the topic,
//! a refused authorization or a missing topic stay until an operator acts. Either way the
//! writer keeps trying (a dead letter is never dropped, and the batch holding it is never
//! committed past it); the class decides the pace, the log level and the metric label.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// A failed produce attempt.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("{0}")]
    Kafka(#[from] KafkaError),
    #[error("delivery report lost (producer closed)")]
    ReportLost,
}

impl ProduceError {
    pub fn class(&self) -> FailureClass {
        match self {
            ProduceError::Kafka(e) => classify(e.rdkafka_error_code()),
            ProduceError::ReportLost => FailureClass::Retryable,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// May succeed on a later attempt without anyone acting.
    Retryable,
    /// Fails the same way until the topic, the broker limits or the permissions change.
    Permanent,
}

impl FailureClass {
    pub const ALL: [FailureClass; 2] = [FailureClass::Retryable, FailureClass::Permanent];

    /// The `class` label of `sck_decoder_dead_letter_failures_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Retryable => "retryable",
            FailureClass::Permanent => "permanent",
        }
    }
}

/// The class of a produce error's librdkafka code (from enqueueing or from the delivery
/// report). Anything not known to be permanent counts as retryable, as every error did before.
pub fn classify(code: Option<RDKafkaErrorCode>) -> FailureClass {
    use RDKafkaErrorCode as C;
    match code {
        Some(
            // The record or its batch is larger than the broker or topic accepts.
            C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::MessageBatchTooLarge
            | C::InvalidRecord
            | C::PolicyViolation
            | C::UnsupportedCompressionType
            // Not allowed to write (the idempotent producer needs cluster IDEMPOTENT_WRITE).
            | C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::Authentication
            | C::SaslAuthenticationFailed
            // No such topic (or partition), or not a valid topic name.
            | C::UnknownTopicOrPartition
            | C::UnknownTopic
            | C::UnknownPartition
            | C::InvalidTopic
            // The idempotent producer hit a fatal error: it cannot produce any more.
            | C::Fatal,
        ) => FailureClass::Permanent,
        _ => FailureClass::Retryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RDKafkaErrorCode as C;

    #[test]
    fn transport_timeouts_full_queues_and_elections_retry_limits_rights_and_topics_do_not() {
        let cases = [
            (Some(C::BrokerTransportFailure), FailureClass::Retryable),
            (Some(C::AllBrokersDown), FailureClass::Retryable),
            (Some(C::NetworkException), FailureClass::Retryable),
            (Some(C::Resolve), FailureClass::Retryable),
            (Some(C::MessageTimedOut), FailureClass::Retryable),
            (Some(C::RequestTimedOut), FailureClass::Retryable),
            (Some(C::QueueFull), FailureClass::Retryable),
            (Some(C::LeaderNotAvailable), FailureClass::Retryable),
            (Some(C::NotLeaderForPartition), FailureClass::Retryable),
            (Some(C::NotEnoughReplicas), FailureClass::Retryable),
            (Some(C::PurgeQueue), FailureClass::Retryable),
            (None, FailureClass::Retryable),
            (Some(C::MessageSizeTooLarge), FailureClass::Permanent),
            (Some(C::MessageBatchTooLarge), FailureClass::Permanent),
            (Some(C::TopicAuthorizationFailed), FailureClass::Permanent),
            (Some(C::ClusterAuthorizationFailed), FailureClass::Permanent),
            (Some(C::SaslAuthenticationFailed), FailureClass::Permanent),
            (Some(C::UnknownTopicOrPartition), FailureClass::Permanent),
            (Some(C::UnknownTopic), FailureClass::Permanent),
            (Some(C::InvalidTopic), FailureClass::Permanent),
            (Some(C::Fatal), FailureClass::Permanent),
        ];
        for (code, class) in cases {
            assert_eq!(classify(code), class, "{code:?}");
        }
    }

    #[test]
    fn errors_carry_their_class() {
        let too_large = ProduceError::from(KafkaError::MessageProduction(C::MessageSizeTooLarge));
        assert_eq!(too_large.class(), FailureClass::Permanent);
        let queue_full = ProduceError::from(KafkaError::MessageProduction(C::QueueFull));
        assert_eq!(queue_full.class(), FailureClass::Retryable);
        assert_eq!(ProduceError::ReportLost.class(), FailureClass::Retryable);
        assert_eq!(
            ProduceError::ReportLost.to_string(),
            "delivery report lost (producer closed)"
        );
        let labels: Vec<_> = FailureClass::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(labels, ["retryable", "permanent"]);
    }
}
