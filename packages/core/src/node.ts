export { readExactlyAt, writeAllAt, writeFileAtomic } from './node/atomic-write.js';
export { diskShards } from './node/disk-shards.js';
export { readSafetensors, SafetensorsFile, writeSafetensors } from './node/safetensors-file.js';
