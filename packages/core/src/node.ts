export { readExactlyAt, writeAllAt, writeFileAtomic } from './node/atomic-write.js';
export { diskShards } from './node/disk-shards.js';
export { readSafetensors, SafetensorsFile, writeSafetensors } from './node/safetensors-file.js';
export {
  checkDirTarget,
  DirLockedError,
  lockPath,
  recoverDir,
  TargetRefusedError,
  WRITE_DIR_STEPS,
  type WriteDirOptions,
  type WriteDirStep,
  writeDirAtomic,
} from './node/write-dir-atomic.js';
