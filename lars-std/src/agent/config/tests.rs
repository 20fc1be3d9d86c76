//! Tests of the agent daemon's configuration reading and its helpers.

use std::path::Path;

use lars_core::lb::PolicyKind;

use super::*;
use crate::config::Ini;

fn read(text: &str) -> Result<AgentConfig, String> {
    let ini = Ini::parse(text, Path::new("agent.conf")).map_err(|e| e.to_string())?;
    let mut config = AgentConfig::default();
    read_agent_config(&ini, &mut config).map_err(|e| e.to_string())?;
    Ok(config)
}

#[test]
fn policies_come_from_loadbalance_and_route_sections() {
    let config = read(
        "[loadbalance]\npolicy = weighted\nslow_start = 30\np2c_decay = 5\n\
         [route:1001:1]\npolicy = maglev\n[route:7:-2]\npolicy = P2C\n",
    )
    .unwrap();
    assert_eq!(config.default_policy, PolicyKind::Weighted);
    assert_eq!(config.lb.slow_start, lars_core::time::Duration::from_secs(30));
    assert_eq!(config.lb.p2c.decay, lars_core::time::Duration::from_secs(5));
    let routes: Vec<_> = config.route_policies.iter().map(|r| (r.modid, r.cmdid, r.policy)).collect();
    assert_eq!(routes, [(1001, 1, PolicyKind::Maglev), (7, -2, PolicyKind::P2c)]);
}

#[test]
fn a_bad_policy_or_route_section_names_the_file_line_and_key() {
    assert_eq!(
        read("[loadbalance]\npolicy = random\n").unwrap_err(),
        "agent.conf:2: key `loadbalance.policy`: `random` is not lars, round_robin, weighted, p2c or maglev"
    );
    assert_eq!(
        read("[route:1001]\npolicy = maglev\n").unwrap_err(),
        "agent.conf:2: key `route:1001.policy`: [route:1001]: a route section is named [route:MODID:CMDID]"
    );
    assert!(read("[route:1:1]\nweight = 3\n").unwrap_err().contains("needs `policy = ...`"));
}
