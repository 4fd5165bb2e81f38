// xks aws-template: the CloudFormation template's structure (no AWS access here): every resource
// of a known type with the properties the network guide asks for, every reference resolvable,
// the targets from the fleet or the HAProxy hosts; and the CLI steps for what CloudFormation lacks.
import t from 'tap';
import { awsCliSteps, awsTemplate } from '../../appliance/aws/template.js';
import { parseConfig } from '../../appliance/config/load.js';

const config = (extra: Record<string, unknown> = {}) =>
  parseConfig(
    {
      proxy: { hostname: 'xks.example.com', regions: ['eu-west-1'] },
      server: { port: 8443, tls: { certFile: 'c.pem', keyFile: 'k.pem' } },
      health: { path: '/healthz', httpPort: 8080 },
      hsm: { nodes: [{ id: 'hsm-1', module: '/m.so', tokenLabel: 't', pin: { env: 'PIN' } }] },
      keyStores: [{ name: 'store1', uriPathPrefix: '/store1', credentialsFile: 'creds.yaml' }],
      fleet: { instances: [{ id: 'a', host: '10.0.1.11' }, { id: 'b', host: '10.0.1.12' }] },
      ...extra,
    },
    'x.yaml',
  );

type Resource = { Type: string; Properties: Record<string, any> };
const TYPES = new Set([
  'AWS::ElasticLoadBalancingV2::LoadBalancer',
  'AWS::ElasticLoadBalancingV2::TargetGroup',
  'AWS::ElasticLoadBalancingV2::Listener',
  'AWS::EC2::VPCEndpointService',
  'AWS::EC2::VPCEndpointServicePermissions',
]);

/** Every Ref / Fn::GetAtt / ${Name} in Fn::Sub names a parameter, a resource or a pseudo parameter. */
function refs(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((n) => refs(n, out));
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === 'Ref') out.push(v as string);
      else if (k === 'Fn::GetAtt') out.push((v as string[])[0]!);
      else if (k === 'Fn::Sub') out.push(...[...(v as string).matchAll(/\$\{([^}.]+)/g)].map((m) => m[1]!));
      else refs(v, out);
    }
  }
  return out;
}

t.test('structure: known resource types, resolvable references, the outputs KMS needs', async (t) => {
  const tpl = awsTemplate(config(), { haproxyHosts: [], monitorPort: 8405, region: 'eu-west-1' }) as any;
  t.equal(tpl.AWSTemplateFormatVersion, '2010-09-09');
  const resources = tpl.Resources as Record<string, Resource>;
  for (const [name, r] of Object.entries(resources)) t.ok(TYPES.has(r.Type), `${name}: ${r.Type}`);
  const known = new Set([...Object.keys(tpl.Parameters), ...Object.keys(resources), 'AWS::Region', 'AWS::AccountId']);
  for (const r of refs(tpl)) t.ok(known.has(r), `reference ${r} resolves`);
  t.ok(tpl.Outputs.EndpointServiceName && tpl.Outputs.EndpointServiceId);
  t.same(JSON.parse(JSON.stringify(tpl)), tpl, 'plain JSON');
});

t.test('NLB and target group as the network guide says', async (t) => {
  const r = (awsTemplate(config(), { haproxyHosts: [], monitorPort: 8405, region: 'eu-west-1' }) as any).Resources;
  t.match(r.XksLoadBalancer.Properties, { Type: 'network', Scheme: 'internal' });
  t.match(r.XksListener.Properties, { Protocol: 'TCP', Port: 443 });
  const tg = r.XksTargetGroup.Properties;
  t.match(tg, { TargetType: 'ip', Protocol: 'TCP', Port: 8443, HealthCheckProtocol: 'HTTP', HealthCheckPort: '8080', HealthCheckPath: '/healthz', Matcher: { HttpCode: '200' } });
  t.match(tg, { HealthCheckIntervalSeconds: 10, HealthCheckTimeoutSeconds: 5, HealthyThresholdCount: 3, UnhealthyThresholdCount: 2 });
  const attrs = Object.fromEntries(tg.TargetGroupAttributes.map((a: { Key: string; Value: string }) => [a.Key, a.Value]));
  t.equal(attrs['proxy_protocol_v2.enabled'], 'true', 'PROXY v2 on');
  t.equal(attrs['deregistration_delay.connection_termination.enabled'], 'true');
  t.same(tg.Targets, [
    { Id: '10.0.1.11', Port: 8443, AvailabilityZone: 'all' },
    { Id: '10.0.1.12', Port: 8443, AvailabilityZone: 'all' },
  ], 'every fleet instance, outside the VPC');
  t.same(r.XksEndpointServicePermissions.Properties.AllowedPrincipals, ['cks.kms.eu-west-1.amazonaws.com'], 'only KMS may connect');
  t.equal(r.XksEndpointService.Properties.AcceptanceRequired, false);
});

t.test('through HAProxy: its hosts on 443, health check on its monitor', async (t) => {
  const tg = (awsTemplate(config(), { haproxyHosts: ['10.0.2.5', '10.0.2.6'], monitorPort: 8405, region: 'eu-west-1' }) as any).Resources.XksTargetGroup.Properties;
  t.match(tg, { Port: 443, HealthCheckProtocol: 'HTTP', HealthCheckPort: '8405' });
  t.same(tg.Targets.map((x: { Id: string }) => x.Id), ['10.0.2.5', '10.0.2.6']);
  const noHttp = (awsTemplate(config({ health: { path: '/healthz' } }), { haproxyHosts: [], monitorPort: 8405, region: 'eu-west-1' }) as any).Resources.XksTargetGroup.Properties;
  t.match(noHttp, { HealthCheckProtocol: 'HTTPS', HealthCheckPort: 'traffic-port' }, 'no health port: HTTPS on the API port');
});

t.test('CLI steps: private DNS name, then create-custom-key-store per key store, no secret', async (t) => {
  const steps = awsCliSteps(config(), { haproxyHosts: [], monitorPort: 8405, region: 'eu-west-1' }, 'xks-proxy').join('\n');
  t.match(steps, /modify-vpc-endpoint-service-configuration .*--private-dns-name xks\.example\.com/);
  t.match(steps, /start-vpc-endpoint-service-private-dns-verification/);
  t.match(steps, /aws kms create-custom-key-store --region eu-west-1 --custom-key-store-name store1 --custom-key-store-type EXTERNAL_KEY_STORE --xks-proxy-connectivity VPC_ENDPOINT_SERVICE --xks-proxy-uri-endpoint https:\/\/xks\.example\.com .*--xks-proxy-uri-path \/store1\/kms\/xks\/v1/);
  t.match(steps, /connect-custom-key-store/);
  t.notMatch(steps, /RawSecretAccessKey=[A-Za-z0-9+/]{20}/, 'no secret in the output');
});
