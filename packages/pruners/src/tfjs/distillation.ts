// Distillation losses for sparse fine-tuning: a pruned student recovers by matching its dense
// teacher (Kurtic et al., Sparse Fine-tuning for Inference Acceleration of Large Language Models).
import { ShapeMismatchError } from '@sparsekit/core';
import * as tf from '@tensorflow/tfjs-core';

/**
 * SquareHead: the sum over layers of MSE(teacher, student) / MSE(teacher, 0), each layer's feature
 * error normalised by its teacher's mean square, so every layer weighs alike whatever its scale.
 * `student` and `teacher` list the same layers' outputs (e.g. each block's residual stream).
 */
export function squareHeadLoss(student: readonly tf.Tensor[], teacher: readonly tf.Tensor[]): tf.Scalar {
  if (student.length !== teacher.length || student.length === 0)
    throw new ShapeMismatchError([teacher.length], [student.length], 'SquareHead student layers');
  return tf.tidy(() =>
    tf.addN(
      student.map((s, l) => {
        const t = teacher[l]!;
        if (s.shape.join() !== t.shape.join())
          throw new ShapeMismatchError(t.shape, s.shape, `SquareHead layer ${l} output`);
        return tf.div(tf.sum(tf.squaredDifference(s, t)), tf.add(tf.sum(tf.square(t)), 1e-12));
      }),
    ),
  ) as tf.Scalar;
}

/**
 * Logit distillation: the mean over rows of KL(teacher || student) of softmax(logits / temperature),
 * times temperature^2 (Hinton's scaling, so gradients keep their size across temperatures).
 */
export function logitDistillationLoss(
  studentLogits: tf.Tensor2D,
  teacherLogits: tf.Tensor2D,
  temperature = 1,
): tf.Scalar {
  if (studentLogits.shape.join() !== teacherLogits.shape.join())
    throw new ShapeMismatchError(teacherLogits.shape, studentLogits.shape, 'student logits');
  return tf.tidy(() => {
    const t = tf.logSoftmax(tf.div(teacherLogits, temperature));
    const s = tf.logSoftmax(tf.div(studentLogits, temperature));
    const kl = tf.sum(tf.mul(tf.exp(t), tf.sub(t, s)), -1);
    return tf.mul(tf.mean(kl), temperature * temperature);
  }) as tf.Scalar;
}
