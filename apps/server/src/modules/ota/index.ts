export {
  createRepositoryService,
  DEFAULT_REPOSITORY_OPTIONS,
  hardwareMatches,
  validateRelease,
  type Actor,
  type PendingView,
  type RepositoryOptions,
  type RepositoryService,
  type RepositoryStatus,
} from './repository.ts';
export {
  createCampaignService,
  eligibility,
  runningVersion,
  validateCampaign,
  type CampaignService,
  type CampaignView,
  type CreateResult,
  type OtaOutbound,
} from './campaigns.ts';
export {
  DEFAULT_PLAN,
  inWindow,
  nextStep,
  tolerated,
  validatePlan,
  waveSizes,
  type CampaignPlan,
  type MaintenanceWindow,
  type SchedulerInput,
  type Step,
  type WaveSpec,
} from './scheduler.ts';
export { createOtaStore } from './store.ts';
export { otaRoutes, releaseJson, campaignJson } from './http.ts';
export { otaMessageHandler, type OtaMessageHandler } from './mqtt.ts';
export { canonical, keyIdOf, publicKeyOf, sha256Hex, verifyEd25519 } from './tuf.ts';
export type {
  Assignment,
  AssignmentState,
  BlobStore,
  Campaign,
  CampaignState,
  OtaStore,
  Release,
  TufPublicKey,
  TufSignature,
} from './model.ts';
