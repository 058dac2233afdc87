export {
  componentNames,
  groupNames,
  parameterPaths,
  pascal,
  resourcePrefix,
} from "../../packages/core/src/deploy";

/**
 * Names and tags of a stage's AWS resources. They are computed, not read back from AWS, so that a
 * function's links and IAM policies can name the Auto Scaling groups before they exist, and so that
 * tests can check them.
 */

export const APP = "hearth";

/** Tags every Hearth resource carries that IAM conditions use; SST's default tags do not reach ASGs. */
export const tagKeys = {
  app: "hearth:app",
  stage: "hearth:stage",
  pool: "hearth:pool",
  group: "hearth:group",
};

export const stageTags = (stage: string): Record<string, string> => ({
  [tagKeys.app]: APP,
  [tagKeys.stage]: stage,
});
