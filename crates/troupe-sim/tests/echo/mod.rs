//! The echo actor the simulation tests call across simulated hosts

use serde::{Deserialize, Serialize};
use troupe_runtime::{Actor, ActorError, Ask, Ctx, Request};

/// A number, answered with itself
#[derive(Serialize, Deserialize)]
pub(crate) struct Echo(pub(crate) u64);

impl Request for Echo {
    const NAME: &'static str = "sim.Echo";
    type Response = u64;
}

/// Answers every [`Echo`] at once
pub(crate) struct EchoActor;

impl Actor for EchoActor {
    type Msg = Ask<Echo>;

    async fn handle(
        &mut self,
        ask: Ask<Echo>,
        _ctx: &mut Ctx<Ask<Echo>>,
    ) -> Result<(), ActorError> {
        let Echo(n) = ask.request;
        ask.reply.send(n);
        Ok(())
    }
}
