// Every command, in the order `bulwark --help` lists them.

import type { Command } from '../context.ts';
import { auditCommands } from './audit.ts';
import { caCommands } from './ca.ts';
import { certCommands } from './cert.ts';
import { deviceCommands } from './device.ts';
import { fleetCommands, groupCommands } from './fleet.ts';
import { iamCommands } from './iam.ts';
import { enrollmentCommands } from './enrollment.ts';
import { loginCommands } from './login.ts';
import { policyCommands } from './policy.ts';
import { postureCommands } from './posture.ts';
import { simulateCommands } from './simulate.ts';
import { startCommands } from './start.ts';
import { telemetryCommands } from './telemetry.ts';
import { releaseCommands } from './release.ts';
import { campaignCommands } from './campaign.ts';

export const commands: readonly Command[] = [
  ...loginCommands,
  ...deviceCommands,
  ...certCommands,
  ...fleetCommands,
  ...groupCommands,
  ...policyCommands,
  ...enrollmentCommands,
  ...caCommands,
  ...telemetryCommands,
  ...releaseCommands,
  ...campaignCommands,
  ...iamCommands,
  ...postureCommands,
  ...auditCommands,
  ...simulateCommands,
  ...startCommands,
];
