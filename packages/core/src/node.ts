export { readExactlyAt, writeAllAt, writeFileAtomic } from './node/atomic-write.js';
export { readSafetensors, SafetensorsFile, writeSafetensors } from './node/safetensors-file.js';
