/**
 * Names and tags of a stage's AWS resources. They are computed, not read back from AWS, so that a
 * function's links and IAM policies can name the Auto Scaling groups before they exist, and so that
 * tests can check them. The names and tags the control plane also uses live in core's `deploy`.
 */
export {
  APP,
  componentNames,
  groupNames,
  parameterPaths,
  pascal,
  resourcePrefix,
  stageTags,
  tagKeys,
} from "../../packages/core/src/deploy";
