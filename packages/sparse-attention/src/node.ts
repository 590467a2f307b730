export { loadLabelChannels, saveLabelChannels } from './policies/channel-file.js';
