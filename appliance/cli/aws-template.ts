// `xks aws-template`: the CloudFormation template of the AWS side (NLB, target group, endpoint
// service) from the configuration, and the CLI steps CloudFormation cannot do.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { awsCliSteps, awsTemplate } from '../aws/template.js';
import { loadConfig } from '../config/load.js';
import { portArg } from './demo.js';
import { CliError } from './errors.js';

const collect = (value: string, previous: string[]) => [...previous, value];

export function register(program: Command): void {
  program
    .command('aws-template')
    .description(
      'CloudFormation template for the AWS side: internal NLB (TCP 443), target group with PROXY v2 and the health check of\n' +
        'docs/network-guide.md, the targets (--haproxy-host addresses, else every fleet.instances entry directly), the VPC endpoint\n' +
        'service and its permission for KMS. The steps CloudFormation cannot do (private DNS name, create-custom-key-store)\n' +
        'are printed as AWS CLI commands (to stderr when the template goes to stdout).',
    )
    .requiredOption('--config <FILE>', 'the appliance configuration')
    .option('--haproxy-host <IP>', 'an HAProxy host as NLB target (repeatable); default: the fleet instances directly', collect, [] as string[])
    .option('--monitor-port <PORT>', "HAProxy's NLB monitor port (health check)", portArg, 8405)
    .option('--region <REGION>', 'AWS region (default: the first of proxy.regions)')
    .option('--stack-name <NAME>', 'CloudFormation stack name used in the printed steps', 'xks-proxy')
    .option('--format <FORMAT>', 'json or yaml', 'json')
    .option('--out <FILE>', 'write the template here (mode 0644) instead of stdout')
    .action(async (o: { config: string; haproxyHost: string[]; monitorPort: number; region?: string; stackName: string; format: string; out?: string }) => {
      if (o.format !== 'json' && o.format !== 'yaml') throw new CliError(`--format ${o.format}: give json or yaml`);
      const { config } = await loadConfig(resolve(o.config));
      const opts = { haproxyHosts: o.haproxyHost, monitorPort: o.monitorPort, region: o.region ?? config.proxy.regions[0] ?? 'us-east-1' };
      const template = awsTemplate(config, opts);
      const text = o.format === 'yaml' ? stringify(template) : JSON.stringify(template, null, 2) + '\n';
      const steps = awsCliSteps(config, opts, o.stackName).join('\n') + '\n';
      if (o.out) {
        writeFileSync(resolve(o.out), text, { mode: 0o644 });
        process.stdout.write(`Wrote ${resolve(o.out)}. Then:\n${steps}`);
      } else {
        process.stdout.write(text);
        process.stderr.write(steps);
      }
    });
}
