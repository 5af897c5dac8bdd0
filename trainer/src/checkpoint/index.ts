/**
 * Checkpoints (docs/architecture.md §4): crash-safe `step-NNNNNNNN/` folders with Hugging Face-compatible
 * weights, optimizer state and trainer state, plus loading of base-model weights.
 */
export { type CheckpointPayload, type OptimizerSnapshot, type WriteCheckpointOptions, writeCheckpoint } from './write-checkpoint.js';
export { type LoadedCheckpoint, type ReadCheckpointExpect, changedConfigKeys, findLatestCheckpoint, readCheckpoint } from './read-checkpoint.js';
export { type ModelWeights, loadModelWeights } from './load-weights.js';
export { type TrainerState, TrainerStateSchema, MaskStatsSchema } from './trainer-state.js';
export { CHECKPOINT_FILES, LATEST_FILE, MODEL_CONFIG_METADATA_KEY, stepDirName, verifyCheckpoint } from './files.js';
export { buildHfConfig } from './hf-config.js';
