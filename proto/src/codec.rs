//! The protobuf codec of every Tierwise RPC: prost's, with small starting
//! buffers. tonic gives each stream an 8 KiB encode and an 8 KiB decode
//! buffer by default; the controller holds one session stream per agent for
//! days, and almost all of what crosses it (heartbeats, commands, results)
//! is a few hundred bytes. The buffers still grow for a larger message.

use prost::Message;
use std::marker::PhantomData;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Starting size of a stream's encode and decode buffers.
const BUFFER_BYTES: usize = 1024;

/// Encoded bytes after which a stream hands what it has to HTTP/2 (tonic's
/// default).
const YIELD_BYTES: usize = 32 * 1024;

/// prost's codec with `BUFFER_BYTES` buffers; named by the generated code.
#[derive(Debug, Clone, Copy)]
pub struct SmallBufferCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER_BYTES, YIELD_BYTES)
}

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}
