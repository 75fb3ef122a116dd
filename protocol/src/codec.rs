//! The protobuf codec of the agent service, with buffers sized for long-lived, mostly idle calls.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Where each buffer of a call starts; it grows with the first message that needs more.
const INITIAL_BUFFER_BYTES: usize = 1024;
/// tonic's default: how much a stream encodes before it lets other tasks run.
const YIELD_THRESHOLD_BYTES: usize = 32 * 1024;

/// `ProstCodec` with 1 KiB initial buffers instead of tonic's 8 KiB. A control plane holds one session call per
/// connected agent for the agent's lifetime, and each call keeps four buffers (encode and decode, each with a
/// twin for zstd): 32 KiB per agent at the default, most of an idle agent's cost, for streams that carry
/// heartbeats of a few dozen bytes.
#[derive(Debug)]
pub struct AgentCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for AgentCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

fn buffer_settings() -> BufferSettings {
    BufferSettings::new(INITIAL_BUFFER_BYTES, YIELD_THRESHOLD_BYTES)
}

impl<T, U> Codec for AgentCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(buffer_settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(buffer_settings())
    }
}
