//! AdamW whose moments can be saved and loaded, so an interrupted run
//! resumes with exactly the optimiser it stopped with (candle-nn's `AdamW`
//! keeps its moments private).

use crate::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use std::collections::HashMap;
use std::path::Path;

/// Decoupled weight decay Adam (Loshchilov & Hutter), the update of
/// candle-nn's and PyTorch's `AdamW`.
pub(crate) struct AdamW {
    vars: Vec<Var>,
    first_moments: Vec<Tensor>,
    second_moments: Vec<Tensor>,
    /// Steps taken (the bias corrections' exponent).
    steps: u64,
    pub learning_rate: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

impl AdamW {
    /// β₁ 0.9, β₂ 0.999, ε 1e-8, weight decay 0.01.
    pub fn new(vars: Vec<Var>, learning_rate: f64) -> Result<AdamW> {
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        Ok(AdamW {
            first_moments: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
            second_moments: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
            vars,
            steps: 0,
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        })
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.steps += 1;
        let lr = self.learning_rate;
        let correction1 = 1.0 - self.beta1.powi(self.steps as i32);
        let correction2 = 1.0 - self.beta2.powi(self.steps as i32);
        for ((var, m), v) in self
            .vars
            .iter()
            .zip(self.first_moments.iter_mut())
            .zip(self.second_moments.iter_mut())
        {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            *m = ((&*m * self.beta1)? + (g * (1.0 - self.beta1))?)?;
            *v = ((&*v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let m_hat = (&*m / correction1)?;
            let v_hat = (&*v / correction2)?;
            let decayed = (var.as_tensor() * (1.0 - lr * self.weight_decay))?;
            let update = ((m_hat / (v_hat.sqrt()? + self.eps)?)? * lr)?;
            var.set(&(decayed - update)?)?;
        }
        Ok(())
    }

    /// The moments, named `{prefix}.m.{i}` and `{prefix}.v.{i}` in the order
    /// of the variables given to [`AdamW::new`].
    pub fn state(&self, prefix: &str, into: &mut HashMap<String, Tensor>) {
        for (i, (m, v)) in self
            .first_moments
            .iter()
            .zip(&self.second_moments)
            .enumerate()
        {
            into.insert(format!("{prefix}.m.{i}"), m.clone());
            into.insert(format!("{prefix}.v.{i}"), v.clone());
        }
    }

    /// Put back what [`AdamW::state`] gave, after `steps` steps.
    pub fn load_state(
        &mut self,
        prefix: &str,
        from: &HashMap<String, Tensor>,
        steps: u64,
        path: &Path,
    ) -> Result<()> {
        for i in 0..self.vars.len() {
            for (kind, slot) in [
                ("m", &mut self.first_moments[i]),
                ("v", &mut self.second_moments[i]),
            ] {
                let name = format!("{prefix}.{kind}.{i}");
                let saved = from.get(&name).ok_or_else(|| {
                    Error::model(path, format!("the training state has no {name}"))
                })?;
                if saved.dims() != slot.dims() {
                    return Err(Error::model(
                        path,
                        format!(
                            "{name} is {:?}, the model needs {:?}",
                            saved.dims(),
                            slot.dims()
                        ),
                    ));
                }
                *slot = saved.clone();
            }
        }
        self.steps = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// The same update as candle-nn's AdamW, step for step.
    #[test]
    fn steps_like_candle_nn_adamw() {
        use candle_nn::Optimizer;
        let start = Tensor::new(&[[1.0f32, -2.0], [0.5, 3.0]], &Device::Cpu).unwrap();
        let ours = Var::from_tensor(&start).unwrap();
        let theirs = Var::from_tensor(&start).unwrap();
        let mut mine = AdamW::new(vec![ours.clone()], 0.05).unwrap();
        let mut reference = candle_nn::AdamW::new(
            vec![theirs.clone()],
            candle_nn::ParamsAdamW {
                lr: 0.05,
                weight_decay: 0.01,
                ..Default::default()
            },
        )
        .unwrap();
        for _ in 0..5 {
            let g = ours
                .as_tensor()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            mine.step(&g).unwrap();
            let g = theirs
                .as_tensor()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            reference.step(&g).unwrap();
        }
        let diff = (ours.as_tensor() - theirs.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-6, "{diff}");
        assert!(ours.as_tensor().to_dtype(DType::F32).is_ok());
    }

    /// Saved after two steps and loaded into a fresh optimiser, the third
    /// step is the one the uninterrupted optimiser takes.
    #[test]
    fn a_loaded_state_continues_exactly() {
        let start = Tensor::new(&[0.3f32, -1.2, 2.0], &Device::Cpu).unwrap();
        let loss = |v: &Var| {
            (v.as_tensor() * v.as_tensor().sin().unwrap())
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        };
        let straight = Var::from_tensor(&start).unwrap();
        let mut a = AdamW::new(vec![straight.clone()], 0.1).unwrap();
        for _ in 0..3 {
            a.step(&loss(&straight)).unwrap();
        }

        let resumed = Var::from_tensor(&start).unwrap();
        let mut b = AdamW::new(vec![resumed.clone()], 0.1).unwrap();
        for _ in 0..2 {
            b.step(&loss(&resumed)).unwrap();
        }
        let mut state = HashMap::new();
        b.state("body", &mut state);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.safetensors");
        candle_core::safetensors::save(&state, &file).unwrap();
        let loaded = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
        let weights = Var::from_tensor(resumed.as_tensor()).unwrap();
        let mut c = AdamW::new(vec![weights.clone()], 0.1).unwrap();
        c.load_state("body", &loaded, 2, &file).unwrap();
        c.step(&loss(&weights)).unwrap();
        assert_eq!(
            weights.as_tensor().to_vec1::<f32>().unwrap(),
            straight.as_tensor().to_vec1::<f32>().unwrap()
        );
        assert!(c.load_state("head", &loaded, 2, &file).is_err());
    }
}
