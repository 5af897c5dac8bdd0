#!/usr/bin/env node
// gmt-train: the trainer's command line on the project's Node.js 24 (see project-node.js).
import { run } from './project-node.js';

run('gmt-train', 'dist/trainer/src/main.js');
