use crate::model::{map_batches, Bert, Encoded};
use crate::{ModelFiles, Precision, Result};

/// A BERT body run for its hidden states, not for a head: the lower layers
/// a trainer keeps frozen run here once per input, on the same packed
/// kernels as inference, and the layers above them train on the result.
pub struct BertBody {
    bert: Bert,
}

impl BertBody {
    /// Load the body of a checkpoint (bare or under `bert.`); heads are ignored.
    pub fn load(files: &ModelFiles, precision: Precision) -> Result<BertBody> {
        let (bert, _, _) = Bert::load(files, precision)?;
        Ok(BertBody { bert })
    }

    pub fn hidden_size(&self) -> usize {
        self.bert.hidden_size()
    }

    /// The hidden states after the embeddings and the first `layers`
    /// encoder layers (0: the embeddings alone) of each input, given as
    /// (word-piece ids, token type ids): `[len_i * hidden]` row-major per
    /// input, in input order. Inputs run in batches of `batch_size`, one
    /// batch per core.
    pub fn hidden_states(
        &self,
        inputs: &[(&[u32], &[u32])],
        layers: usize,
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let encoded: Vec<Encoded> = inputs
            .iter()
            .map(|(ids, type_ids)| Encoded {
                ids: ids.to_vec(),
                type_ids: type_ids.to_vec(),
            })
            .collect();
        let h = self.hidden_size();
        map_batches(&encoded, batch_size, |batch, cores| {
            let packed = self.bert.encoder.forward_layers(
                batch,
                layers,
                crate::encoder::Rows::All,
                cores,
            )?;
            Ok((0..batch.len())
                .map(|i| packed.rows(i, h).to_vec())
                .collect())
        })
    }
}
