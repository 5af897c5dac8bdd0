#!/usr/bin/env node
// gmt-operator: the operator on the project's Node.js 24 (see project-node.js).
import { run } from './project-node.js';

run('gmt-operator', 'dist/operator/src/main.js');
